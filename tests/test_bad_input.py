"""Bad input across the commands: a one-line error that names the problem and the fix, a
non-zero exit where the request was not met, validation before any work or file, and nothing
half-written that looks complete.

Cost: one all-atom run of 27 molecules (2 + 4 ps, CPU platform; a 1.86 nm box, 400 frames
with mapped forces), shared by the module; everything else stops before any simulation.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cgforge.cli.main import main
from cgforge.errors import InputError, SimulationError

MOLECULE = "3-methylpentane"
UNWRITABLE = ("/proc/cgforge-out", "parent-is-a-file")


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def _out(tmp_path: Path, kind: str) -> Path:
    if kind.startswith("/"):
        return Path(kind)
    (tmp_path / "a-file").write_text("not a directory\n")
    return tmp_path / "a-file" / "out"


@pytest.fixture(scope="module")
def aa27(tmp_path_factory) -> Path:
    """A 27-molecule all-atom reference with mapped forces (box about 1.86 nm)."""
    out = tmp_path_factory.mktemp("aa27") / "ref"
    code = main([
        "aa", MOLECULE, "--molecules", "27", "--equilibrate", "2ps", "--production", "4ps",
        "--sample-every", "0.01ps", "--forces", "--platform", "cpu", "--quiet", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def potential_csv(tmp_path_factory) -> Path:
    from cgforge.potentials import TabulatedPotential, write_csv

    path = tmp_path_factory.mktemp("pot") / "lj.csv"
    grid = np.arange(0.2, 0.85 + 1e-9, 0.002)
    write_csv(path, TabulatedPotential.lj(0.996, 0.34, grid).smooth_cutoff(0.1))
    return path


# ------------------------------------------------------------------ --out that cannot be made
@pytest.mark.parametrize("kind", UNWRITABLE)
@pytest.mark.parametrize(
    "command",
    ["aa", "analyze", "ibi", "run", "fm linear", "predict", "export", "db export", "db init",
     "train mobility", "compare"],
)  # fmt: skip
def test_out_that_cannot_be_created_is_one_line(aa27, potential_csv, tmp_path, capsys, command,
                                                kind):  # fmt: skip
    out = _out(tmp_path, kind)
    db = Path(__file__).parents[1] / "data" / "ffdb-cpu-quick.sqlite"
    args = {
        "aa": ["aa", MOLECULE, "--molecules", "27", "--out", str(out)],
        "analyze": ["analyze", "--topology", str(aa27 / "topology.pdb"), "--trajectory",
                    str(aa27 / "trajectory.dcd"), "--out", str(out)],
        "ibi": ["ibi", str(aa27), "--out", str(out), "--quiet"],
        "run": ["run", MOLECULE, "--out", str(out), "--quiet"],
        "fm linear": ["fm", "linear", str(aa27), "--out", str(out)],
        "predict": ["predict", str(aa27), "--out", str(out), "--quiet"],
        "export": ["export", str(potential_csv), "--format", "csv", "--mass", "40",
                   "--density", "0.8", "--temperature", "100", "--out", str(out)],
        "db export": ["db", "export", str(db), "--out", str(out)],
        "db init": ["db", "init", str(out / "ff.db")],
        "train mobility": ["train", "mobility", str(db), "--out", str(out), "--quiet"],
        "compare": ["compare", str(aa27), "--methods", "rescale", "--alpha", "2",
                    "--out", str(out), "--quiet"],
    }[command]  # fmt: skip
    capsys.readouterr()
    tic = time.monotonic()
    assert main(args) == 2
    assert time.monotonic() - tic < 30  # refused before any training or simulation
    _one_line_error(capsys, str(out.parent) if kind != UNWRITABLE[0] else "/proc")


# ------------------------------------------------------------------ the error handler
def test_errors_without_click_installed(monkeypatch, capsys):
    """typer vendors click: a usage error and an unexpected error need no ``import click``."""
    import cgforge.workflows.aa as aa_workflow

    monkeypatch.setitem(sys.modules, "click", None)  # import click fails
    capsys.readouterr()
    assert main(["aa", MOLECULE, "--bogus-option", "--out", "x"]) == 2
    assert "--bogus-option" in capsys.readouterr().err

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not an input error")

    monkeypatch.setattr(aa_workflow, "run_aa", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # the bug itself, one traceback
        main(["aa", MOLECULE, "--molecules", "4", "--out", "x", "--quiet"])


def test_messages_keep_their_brackets(monkeypatch, capsys):
    """rich markup must not eat '[ml]' of an install hint, nor '[values]' of a help text."""
    import cgforge.workflows.aa as aa_workflow

    def needs_torch(*args, **kwargs):
        raise InputError("training needs torch; install it with pip install 'cgforge[ml]'")

    monkeypatch.setattr(aa_workflow, "run_aa", needs_torch)
    capsys.readouterr()
    assert main(["aa", MOLECULE, "--molecules", "4", "--out", "x", "--quiet"]) == 2
    _one_line_error(capsys, "pip install 'cgforge[ml]'")
    assert main(["fm", "study", "--help"]) == 0
    assert "[values]" in capsys.readouterr().out


# ------------------------------------------------------------------ molecules
def test_oversized_molecule_is_refused_at_once(tmp_path, capsys):
    out = tmp_path / "o"
    tic = time.monotonic()
    assert main(["aa", "C" * 166, "--molecules", "10", "--out", str(out)]) == 2
    assert time.monotonic() - tic < 10
    _one_line_error(capsys, "166 heavy atoms", "at most 30")
    assert not out.exists()


def test_unknown_molecule_leaves_nothing_that_blocks_the_corrected_command(tmp_path, capsys):
    out = tmp_path / "o1"
    assert main(["aa", "unobtainium", "--out", str(out)]) == 2
    _one_line_error(capsys, "unknown molecule 'unobtainium'")
    assert not out.exists()  # refused before the run directory was made


# ------------------------------------------------------------------ analyze
def test_analyze_refuses_too_few_frames_and_flags_a_ballistic_fit(aa27, tmp_path, capsys):
    base = ["analyze", "--topology", str(aa27 / "topology.pdb"), "--trajectory",
            str(aa27 / "trajectory.dcd")]  # fmt: skip
    out = tmp_path / "three"
    assert main([*base, "--stop", "3", "--out", str(out)]) == 2
    _one_line_error(capsys, "3 frames", "at least 10")
    assert not (out / "summary.json").exists()

    out = tmp_path / "twelve"  # 12 frames 0.01 ps apart: ballistic, no diffusive regime
    assert main([*base, "--stop", "12", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diffusion_warning"] and summary["notes"]
    assert "note: diffusion:" in capsys.readouterr().err


# ------------------------------------------------------------------ compare
def test_compare_checks_alpha_and_model_before_any_run(aa27, tmp_path, capsys):
    from cgforge.methods.mobility.model_io import resolve_model_dir

    out = tmp_path / "cmp"
    tic = time.monotonic()
    for alpha, flag in (("-2", "--alpha"), ("nan", "--alpha")):
        assert main(["compare", str(aa27), "--methods", "rescale", "--alpha", alpha,
                     "--out", str(out), "--quiet"]) == 2  # fmt: skip
        _one_line_error(capsys, flag, "positive")
    assert main(["compare", str(aa27), "--methods", "rescale", "--alpha", "2", "--alpha-err",
                 "-1", "--out", str(out), "--quiet"]) == 2  # fmt: skip
    _one_line_error(capsys, "--alpha-err")
    broken = tmp_path / "model"
    shutil.copytree(resolve_model_dir(None), broken)
    (broken / "weights.pt").unlink()
    assert main(["compare", str(aa27), "--methods", "ibi,ml", "--model", str(broken),
                 "--out", str(out), "--quiet"]) == 2  # fmt: skip
    _one_line_error(capsys, "lacks weights.pt", "retrain")
    assert time.monotonic() - tic < 30 and not out.exists()


def test_compare_whose_methods_all_failed_exits_non_zero(aa27, tmp_path, monkeypatch, capsys):
    import cgforge.workflows.compare as compare_workflow

    def all_failed(reference, out, **kwargs):
        rows = [{"method": m, "status": "failed", "notes": "blew up [at step 3]"}
                for m in ("ibi", "rescale")]  # fmt: skip
        return {"molecule": MOLECULE, "rows": rows}

    monkeypatch.setattr(compare_workflow, "run_compare", all_failed)
    capsys.readouterr()
    assert main(["compare", str(aa27), "--out", str(tmp_path / "c"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "every requested method failed (ibi, rescale)" in err
    assert "blew up [at step 3]" in err


# ------------------------------------------------------------------ databases
def test_db_export_into_a_non_empty_directory_needs_overwrite(tmp_path, capsys):
    db = Path(__file__).parents[1] / "data" / "ffdb-cpu-quick.sqlite"
    out = tmp_path / "export"
    out.mkdir()
    (out / "mine.txt").write_text("keep me\n")
    capsys.readouterr()
    assert main(["db", "export", str(db), "--out", str(out)]) == 2
    _one_line_error(capsys, "is not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert main(["db", "export", str(db), "--out", str(out), "--overwrite"]) == 0
    assert (out / "stage_A.npz").is_file() and (out / "mine.txt").is_file()


def test_db_init_on_an_existing_file_names_the_way_out(tmp_path, capsys):
    path = tmp_path / "ff.db"
    assert main(["db", "init", str(path)]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["db", "init", str(path)]) == 2
    err = _one_line_error(capsys, "already exists", "db generate", "new path")
    assert "exist_ok" not in err and path.read_bytes() == before


def test_stage_b_beads_suit_the_parent_cutoff():
    """The tiny preset's 64 beads are too few for the shipped records' 1.4 nm cutoffs: stage B
    takes as many as the cutoff needs (so nothing fails for a cutoff beyond half the box)."""
    from cgforge.database.stages import STAGE_PRESETS
    from cgforge.database.store import Database
    from cgforge.engines.cg_system import CUTOFF_BOX_FRACTION
    from cgforge.units import AMU_NM3_TO_G_CM3
    from cgforge.workflows.db_stages import stage_b_beads

    db = Path(__file__).parents[1] / "data" / "ffdb-cpu-quick.sqlite"
    settings = STAGE_PRESETS["tiny"]
    with Database.open(db, readonly=True) as database:
        parents = list(database.iter_done("A"))
    assert parents
    for parent in parents:
        cutoff, rho = parent.scalars["cutoff_nm"], parent.scalars["density_g_cm3"]
        mass = parent.scalars["mass_amu"]
        n = stage_b_beads(settings, cutoff, rho / mass)
        edge = (n * mass * AMU_NM3_TO_G_CM3 / rho) ** (1 / 3)
        assert n > settings["cg_beads"] and cutoff <= CUTOFF_BOX_FRACTION * edge
        assert edge < cutoff / CUTOFF_BOX_FRACTION * 1.05  # not more beads than needed
    assert stage_b_beads(settings, 0.5, 0.65 / 86.0) == settings["cg_beads"]  # enough already


# ------------------------------------------------------------------ bead counts for the cutoff
def test_ibi_chooses_a_box_for_its_cutoff_before_any_work(aa27, tmp_path, monkeypatch, capsys):
    import cgforge.workflows.cg as cg_workflow
    from cgforge.engines.cg_system import CUTOFF_BOX_FRACTION

    seen = {}

    def stop(target, *, n_beads, box_nm, **kwargs):
        seen.update(n_beads=n_beads, box_nm=np.asarray(box_nm))
        raise InputError("stopped before IBI")

    monkeypatch.setattr(cg_workflow, "run_ibi", stop)
    reference = cg_workflow.load_reference(aa27)
    capsys.readouterr()
    assert main(["ibi", str(aa27), "--out", str(tmp_path / "ibi"), "--quiet"]) == 2
    cutoff = min(1.4, float(reference.rdf.r_nm[-1]))
    assert seen["n_beads"] > reference.n_molecules  # 27 molecules: too small a box
    assert cutoff <= CUTOFF_BOX_FRACTION * float(seen["box_nm"].min()) + 1e-9
    assert main(["ibi", str(aa27), "--beads", "27", "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert seen["n_beads"] == 27  # the user's count stays


def test_predict_checks_beads_and_sizes_the_box_for_the_model(aa27, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    import cgforge.workflows.predict as predict_workflow
    from cgforge.potentials.io import read_potential
    from cgforge.workflows.cg import box_from_density, load_reference

    out = tmp_path / "p0"
    for beads in ("0", "1", "2.5"):
        assert main(["predict", str(aa27), "--beads", beads, "--out", str(out), "--quiet"]) == 2
        capsys.readouterr()
        assert not out.exists()  # nothing written: no prediction.json, no tables

    seen = {}

    def stop(potential, *, n_beads, **kwargs):
        seen.update(n_beads=n_beads, cutoff=read_potential(potential).cutoff_nm)
        raise SimulationError("stopped before CG MD")

    monkeypatch.setattr(predict_workflow, "run_cg", stop)
    reference = load_reference(aa27)
    assert main(["predict", str(aa27), "--out", str(tmp_path / "p1"), "--quiet"]) == 1
    edge = float(box_from_density(seen["n_beads"], reference.bead_mass_amu,
                                  reference.density_g_cm3)[0])  # fmt: skip
    assert seen["n_beads"] > reference.n_molecules and seen["cutoff"] <= 0.45 * edge + 1e-9

    out = tmp_path / "p2"  # too few beads for the model's cutoff: refused before any file
    capsys.readouterr()
    assert main(["predict", str(aa27), "--beads", "27", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "--beads 27", f"--beads {seen['n_beads']}")
    assert not out.exists()


# ------------------------------------------------------------------ force matching, time steps
def test_force_matching_defaults_suit_a_small_box(aa27, tmp_path, capsys):
    """In a 1.86 nm box the default cutoffs are legal: fm linear gives a finite table, fm train
    accepts its own default; a log gets progress lines."""
    from cgforge.potentials.io import read_potential

    box = json.loads((aa27 / "summary.json").read_text())["box_nm"]
    half = 0.5 * min(box)
    capsys.readouterr()
    assert main(["fm", "linear", str(aa27), "--out", str(tmp_path / "lin")]) == 0
    summary = json.loads((tmp_path / "lin" / "summary.json").read_text())
    assert 0.8 * half < summary["cutoff_nm"] <= half
    table = read_potential(tmp_path / "lin" / "potential.csv")  # refuses NaN rows
    assert np.all(np.isfinite(table.u_kj_mol)) and table.cutoff_nm <= half
    assert "force matching: started" in capsys.readouterr().err  # not a terminal: lines
    assert main(["fm", "train", str(aa27), "--out", str(tmp_path / "gnn"), "--epochs", "1",
                 "--stride", "4", "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    trained = json.loads((tmp_path / "gnn" / "summary.json").read_text())
    cutoff = trained.get("cutoff_nm") or trained["hyperparameters"]["cutoff_nm"]
    assert cutoff <= half


def test_bspline_knots_end_exactly_at_the_cutoff():
    from cgforge.methods.force_matching import BSplineBasis

    for r_min in np.arange(0.30, 0.50, 0.01):
        for r_max in np.arange(0.80, 1.00, 0.01):
            n = max(math.ceil((r_max - r_min) / 0.02 - 1e-9), 3) + 1
            basis = BSplineBasis(float(r_min), float(r_max), n)
            t = basis.knot_vector_nm
            assert t[3] == basis.r_min_nm and t[3 + n - 1] == basis.r_max_nm
            spline = basis.spline(np.ones(basis.n_basis)).antiderivative()
            assert np.isfinite(spline(basis.r_max_nm))


def test_timestep_without_unit_suggests_femtoseconds(tmp_path, capsys):
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    capsys.readouterr()
    assert (
        main(["fm", "simulate", str(model), "--timestep", "5", "--out", str(tmp_path / "s")]) == 2
    )
    err = _one_line_error(capsys, "--timestep", "'5fs'")
    assert "'5ps'" not in err


# ------------------------------------------------------------------ progress in a log
def test_progress_in_a_log_is_lines_per_stage(capsys):
    from cgforge.cli.progress import stage_progress

    with stage_progress(True) as progress:
        for done in range(0, 1001, 50):
            progress("equilibration", done, 1000, 12.5)
        progress("production", 0, 200, 0.0)
        progress("production", 200, 200, 10.0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "equilibration: started (1000 steps)"
    assert lines[4] == "equilibration: 1000/1000 steps, 12.50 ns/day (done)"
    assert len(lines) == 7 and lines[-1].startswith("production: 200/200 steps")
