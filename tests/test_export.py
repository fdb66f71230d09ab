"""cgforge export: each format loads back in its target program's terms; bad input is refused.

Potential: a 3-methylpentane-like one-bead Lennard-Jones (ε = 2.5 kJ/mol, σ = 0.55 nm),
tabulated from 0.40 nm (or 0.4025 nm, off the grid multiple) to 1.4 nm every 0.005 nm and
tapered to zero over the last 0.1 nm, in a run directory whose summary.json gives 86.18 amu,
298.15 K and a number density of 4.6 nm⁻³.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import openmm
import pytest
import typer
from typer.testing import CliRunner

from cgforge.cli.export import register
from cgforge.errors import InputError
from cgforge.potentials import (
    TabulatedPotential,
    read_csv,
    read_gromacs_xvg,
    read_lammps,
    read_votca,
    write_csv,
)
from cgforge.units import AMU_NM3_TO_G_CM3, ANGSTROM_TO_NM, KCAL_TO_KJ, kT
from cgforge.workflows.export import EXPORT_FORMATS, export_potential, load_export_source

EPS = 2.5  # kJ/mol
SIGMA = 0.55  # nm
CUTOFF = 1.4  # nm
MASS = 86.18  # amu
T = 298.15  # K
RHO = 4.6  # nm^-3
DENSITY = RHO * MASS * AMU_NM3_TO_G_CM3  # g/cm³
BEADS = 300  # box 4.03 nm > 2 cutoffs


def lj_potential(start: float = 0.40) -> TabulatedPotential:
    grid = np.arange(start, CUTOFF + 1e-9, 0.005)
    return TabulatedPotential.lj(EPS, SIGMA, grid).smooth_cutoff(0.1)


def make_run(root: Path, potential: TabulatedPotential | None = None) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    write_csv(run / "potential.csv", lj_potential() if potential is None else potential)
    summary = {"bead_mass_amu": MASS, "temperature_K": T, "density_g_cm3": DENSITY}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path)


def _nodes(potential: TabulatedPotential) -> np.ndarray:
    return potential.r_nm[potential.r_nm <= potential.cutoff_nm]


# ---------------------------------------------------------------------- LAMMPS
@pytest.mark.parametrize("start", [0.40, 0.4025])
def test_lammps_table_and_input(tmp_path, start):
    potential = lj_potential(start)
    out = tmp_path / "lammps"
    result = export_potential(make_run(tmp_path, potential), "lammps", out)
    assert {"CG.table", "in.cg", "export.json"} <= set(result.files)
    text = (out / "CG.table").read_text()
    assert "UNITS: real" in text.splitlines()[0]
    table = read_lammps(out / "CG.table", keyword="CG_CG")
    # same U and F in kJ/mol at every node of the original table (Å, kcal/mol in the file)
    r = _nodes(potential)
    assert np.allclose(table.energy(r), potential.energy(r), rtol=1e-9, atol=1e-9)
    assert np.allclose(table.force(r), potential.force(r), rtol=1e-9, atol=1e-8)
    # continued inwards: LAMMPS never meets r below the table (first row within one step of 0)
    assert 0.0 < table.r_min_nm <= potential.dr_nm + 1e-12
    wall = table.r_nm < start - 1e-9
    assert wall.sum() >= 70
    assert np.all(table.f_kj_mol_nm[wall] > 0) and np.all(np.diff(table.u_kj_mol[wall]) < 0)
    # raw numbers in the file are real units: row at the cutoff-side end, kcal/mol and Å
    params = re.search(r"^N (\d+) R (\S+) (\S+)", text, re.MULTILINE)
    assert params is not None
    n_rows, r_hi_a = int(params.group(1)), float(params.group(3))
    assert n_rows == len(table)
    assert r_hi_a == pytest.approx(potential.cutoff_nm / ANGSTROM_TO_NM, rel=1e-12)
    first = re.search(r"^1 (\S+) (\S+) (\S+)$", text, re.MULTILINE)
    r1_a, e1 = float(first.group(1)), float(first.group(2))
    assert e1 * KCAL_TO_KJ == pytest.approx(table.energy(r1_a * ANGSTROM_TO_NM), rel=1e-9)

    lines = [ln.split("#")[0].split() for ln in (out / "in.cg").read_text().splitlines()]
    commands = [words for words in lines if words]
    names = [words[0] for words in commands]
    assert names == ["units", "atom_style", "mass", "pair_style", "pair_coeff"]
    assert commands[0] == ["units", "real"] and commands[1] == ["atom_style", "atomic"]
    assert commands[2][1] == "1" and float(commands[2][2]) == pytest.approx(MASS)
    assert commands[3] == ["pair_style", "table", "linear", str(n_rows)]
    assert commands[4][:5] == ["pair_coeff", "1", "1", "CG.table", "CG_CG"]
    assert float(commands[4][5]) == pytest.approx(r_hi_a, rel=1e-12)
    assert "units real" in (out / "in.cg").read_text().splitlines()[1]


# ---------------------------------------------------------------------- GROMACS
def test_gromacs_files(run_dir, tmp_path):
    potential = read_csv(run_dir / "potential.csv")
    out = tmp_path / "gmx"
    export_potential(run_dir, "gromacs", out, n_beads=BEADS)
    for name in ("table_CG_CG.xvg", "table.xvg"):
        table = read_gromacs_xvg(out / name)
        # exact at the nodes both grids share (0.002 and 0.005 nm: every 0.01 nm) ...
        r = np.round(np.arange(0.40, CUTOFF + 1e-9, 0.01), 10)
        assert np.allclose(table.energy(r), potential.energy(r), rtol=1e-9, atol=1e-9)
        assert np.allclose(table.force(r), potential.force(r), rtol=1e-9, atol=1e-8)
        # ... and interpolated in between
        r = _nodes(potential)
        assert np.allclose(table.energy(r), potential.energy(r), rtol=1e-5, atol=1e-6)
        # r from 0 to cutoff + 1 nm (table-extension) in steps of 0.002 nm
        rows = np.loadtxt(out / name, comments=("#", "@"))
        assert rows[0, 0] == 0.0 and rows[-1, 0] == pytest.approx(CUTOFF + 1.0)
        assert np.all(rows[:, [1, 2, 3, 4]] == 0.0)  # only the h column holds the potential
    top = (out / "cg.top").read_text()
    atomtype = re.search(r"\[ atomtypes \]\n;.*\n\s*(.+)\n", top).group(1).split()
    assert atomtype[0] == "CG" and float(atomtype[1]) == pytest.approx(MASS)
    assert float(atomtype[4]) == 0.0 and float(atomtype[5]) == 1.0  # C6 = 0, C12 = 1
    assert re.search(r"^CG\s+300$", top, re.MULTILINE)
    mdp = dict(
        (k.strip(), v.split(";")[0].strip())
        for k, v in (
            ln.split("=", 1) for ln in (out / "cg.mdp").read_text().splitlines() if "=" in ln
        )
        if not k.strip().startswith(";")
    )
    assert mdp["vdwtype"] == "user" and mdp["cutoff-scheme"] == "group"
    assert float(mdp["rvdw"]) == pytest.approx(CUTOFF) and mdp["energygrp-table"] == "CG CG"
    gro = (out / "conf.gro").read_text().splitlines()
    assert int(gro[1]) == BEADS and len(gro) == BEADS + 3
    edge = float(gro[-1].split()[0])
    assert BEADS / edge**3 == pytest.approx(RHO, rel=1e-4)
    readme = (out / "README.txt").read_text()
    assert "GROMACS 2020" in readme and "2019" in readme


@pytest.mark.gromacs  # skips without gmx, fails in CI (tests/conftest.py)
def test_gromacs_files_in_gmx(run_dir, tmp_path):
    """The topology and coordinates pass grompp; the table mdp fails exactly as README says."""
    out = tmp_path / "gmx"
    export_potential(run_dir, "gromacs", out, n_beads=BEADS)

    def grompp(mdp_lines: list[str], name: str) -> subprocess.CompletedProcess:
        (out / f"{name}.mdp").write_text("\n".join(["integrator = md", "nsteps = 0", *mdp_lines]))
        return subprocess.run(
            ["gmx", "grompp", "-f", f"{name}.mdp", "-c", "conf.gro", "-p", "cg.top",
             "-o", f"{name}.tpr", "-po", f"{name}_out.mdp", "-maxwarn", "5"],
            cwd=out, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    verlet = ["cutoff-scheme = Verlet", "vdwtype = cut-off", "rvdw = 1.4", "rcoulomb = 1.4"]
    plain = grompp(verlet, "plain")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert (out / "plain.tpr").is_file()
    version = subprocess.run(["gmx", "--version"], capture_output=True, text=True, check=False)
    year = re.search(r"GROMACS version:\s+(\d{4})", version.stdout + version.stderr)
    tabled = grompp((out / "cg.mdp").read_text().splitlines(), "table")
    if year is not None and int(year.group(1)) >= 2020:
        assert tabled.returncode != 0
        assert "group cutoff scheme has been removed" in tabled.stderr
    else:
        assert tabled.returncode == 0, tabled.stderr[-2000:]


# ---------------------------------------------------------------------- OpenMM
def test_openmm_system_gives_the_table_pair_energy(run_dir, tmp_path):
    potential = read_csv(run_dir / "potential.csv")
    out = tmp_path / "omm"
    export_potential(run_dir, "openmm", out, n_beads=BEADS)
    system = openmm.XmlSerializer.deserialize((out / "system.xml").read_text())
    assert system.getNumParticles() == BEADS
    assert system.getParticleMass(7).value_in_unit(openmm.unit.dalton) == pytest.approx(MASS)
    box = system.getDefaultPeriodicBoxVectors()
    edge = box[0][0].value_in_unit(openmm.unit.nanometer)
    assert BEADS / edge**3 == pytest.approx(RHO, rel=1e-9)
    (force,) = [f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce)]
    assert force.getCutoffDistance().value_in_unit(openmm.unit.nanometer) == pytest.approx(CUTOFF)
    assert force.getNonbondedMethod() == openmm.CustomNonbondedForce.CutoffPeriodic

    # total energy of the exported start configuration = sum of table pair energies
    pdb = openmm.app.PDBFile(str(out / "start.pdb"))
    pos = np.array(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
    platform = openmm.Platform.getPlatformByName("Reference")
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
    context.setPositions(pos)
    energy = context.getState(getEnergy=True).getPotentialEnergy()
    diff = pos[:, None, :] - pos[None, :, :]
    diff -= edge * np.round(diff / edge)
    dist = np.sqrt((diff**2).sum(-1))[np.triu_indices(BEADS, 1)]
    expected = float(np.sum(potential.energy(dist[dist < CUTOFF])))
    assert energy.value_in_unit(openmm.unit.kilojoule_per_mole) == pytest.approx(
        expected, rel=1e-4, abs=1e-2
    )

    # one pair at chosen distances (all other pairs switched off by an interaction group)
    force.addInteractionGroup([0], [1])
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
    far = np.full((BEADS, 3), 0.5 * edge)
    for r in (0.45, 0.55, 0.62, 0.8, 1.0, 1.33):
        pair = far.copy()
        pair[0, 0] -= 0.5 * r
        pair[1, 0] += 0.5 * r
        context.setPositions(pair)
        u = context.getState(getEnergy=True).getPotentialEnergy()
        assert u.value_in_unit(openmm.unit.kilojoule_per_mole) == pytest.approx(
            potential.energy(r), abs=2e-3 * max(1.0, abs(potential.energy(r)))
        )
    assert np.allclose(read_csv(out / "potential.csv").u_kj_mol, potential.u_kj_mol)


# ---------------------------------------------------------------------- VOTCA, CSV
def test_votca_round_trip_and_settings(run_dir, tmp_path):
    potential = read_csv(run_dir / "potential.csv")
    out = tmp_path / "votca"
    export_potential(run_dir, "votca", out)
    back = read_votca(out / "CG-CG.pot.new")
    assert np.allclose(back.r_nm, potential.r_nm) and np.allclose(back.u_kj_mol, potential.u_kj_mol)
    assert back.cutoff_nm == pytest.approx(CUTOFF)
    root = ET.parse(out / "settings.xml").getroot()
    nb = root.find("non-bonded")
    assert nb.findtext("name") == "CG-CG" and nb.findtext("type1") == "CG"
    assert float(nb.findtext("min")) == pytest.approx(back.r_min_nm)
    assert float(nb.findtext("max")) == pytest.approx(back.r_max_nm)
    assert float(nb.findtext("step")) == pytest.approx(back.dr_nm)
    assert float(root.find("inverse").findtext("kBT")) == pytest.approx(kT(T))


def test_csv_is_a_copy(run_dir, tmp_path):
    out = tmp_path / "csv"
    export_potential(run_dir, "csv", out)
    assert (out / "potential.csv").read_bytes() == (run_dir / "potential.csv").read_bytes()
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["format"] == "csv" and manifest["bead_mass_amu"] == pytest.approx(MASS)


def test_metadata_from_an_ibi_work_directory(tmp_path):
    work = tmp_path / "ibi"
    work.mkdir()
    write_csv(work / "potential.csv", lj_potential())
    box = (BEADS / RHO) ** (1 / 3)
    settings = {"temperature_K": T, "n_beads": BEADS, "box_nm": [box] * 3, "mass_amu": MASS}
    (work / "ibi.json").write_text(json.dumps(settings))
    src = load_export_source(work)
    assert src.mass_amu == MASS and src.temperature_K == T
    assert src.number_density_nm3 == pytest.approx(RHO) and src.density_g_cm3 == pytest.approx(
        DENSITY
    )
    # explicit values win; a table file without run files has none
    assert load_export_source(work, density_g_cm3=0.5).density_g_cm3 == pytest.approx(0.5)
    shutil.copy(work / "potential.csv", tmp_path / "lj.csv")
    bare = load_export_source(tmp_path / "lj.csv")
    assert bare.mass_amu is None and bare.number_density_nm3 is None


# ---------------------------------------------------------------------- bad input, CLI
def test_bad_input_is_refused_and_writes_nothing(run_dir, tmp_path):
    cases = [
        (dict(source=run_dir, fmt="hoomd"), "unknown export format"),
        (dict(source=tmp_path / "missing"), "not found"),
        (dict(source=tmp_path), "holds no potential.csv"),
        (dict(source=run_dir, fmt="openmm", n_beads=50), "use n_beads"),
    ]
    for i, (kwargs, message) in enumerate(cases):
        kwargs = {"fmt": "lammps", **kwargs}
        with pytest.raises(InputError, match=message):
            export_potential(kwargs.pop("source"), kwargs.pop("fmt"), tmp_path / f"o{i}", **kwargs)
        assert not (tmp_path / f"o{i}").exists()
    shutil.copy(run_dir / "potential.csv", tmp_path / "lj.csv")
    for fmt in ("lammps", "openmm"):
        with pytest.raises(InputError, match="needs the bead mass"):
            export_potential(tmp_path / "lj.csv", fmt, tmp_path / f"bare_{fmt}")
    with pytest.raises(InputError, match="needs the density"):
        export_potential(tmp_path / "lj.csv", "openmm", tmp_path / "x", mass_amu=MASS)
    (tmp_path / "bad.csv").write_text("r_nm,U_kJ_mol\n0.1,1\n")
    with pytest.raises(InputError, match="rows"):
        export_potential(tmp_path / "bad.csv", "csv", tmp_path / "y")
    # a non-empty output directory needs overwrite=True
    out = tmp_path / "full"
    export_potential(run_dir, "votca", out)
    with pytest.raises(InputError, match=r"not empty.*pass overwrite=True"):
        export_potential(run_dir, "votca", out)
    export_potential(run_dir, "votca", out, overwrite=True)
    assert sorted(EXPORT_FORMATS) == ["csv", "gromacs", "lammps", "openmm", "votca"]


def test_cli_export(run_dir, tmp_path):
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A command group, as in cgforge's own app."""

    register(app)
    out = tmp_path / "cli"
    args = ["export", str(run_dir), "--format", "lammps", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "CG.table").is_file() and (out / "in.cg").is_file()
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, InputError) and "not empty" in str(again.exception)
    bad = CliRunner().invoke(app, ["export", str(run_dir), "--format", "xyz", "--out", "z"])
    assert isinstance(bad.exception, InputError)
