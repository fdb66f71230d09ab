"""Shared fixtures, and the ``gromacs`` marker.

A test marked ``gromacs`` needs the GROMACS executable ``gmx``: without it the test skips, but
in CI (``CI=true``, as CI services and ``.ci/run`` set it) it fails, so a broken GROMACS
install shows as failures instead of hiding among the skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

from _systems import lj_fluid

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


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
