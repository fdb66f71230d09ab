"""``cgforge aa``: a molecular liquid's all-atom reference and its one-bead view.

molecule (built-in name, SMILES, or the user's GROMACS .top + .gro) → OPLS-AA system → packed
liquid → MD (minimise, NPT, production at the NPT mean volume) → centre-of-mass beads →
RDF, MSD/D, density, pressure → files of the output contract (see
:mod:`cgforge.liquid_analysis`).

A fixed production density (the protocol's ``production_density_scale`` × the NPT mean density,
or ``production_density_g_cm3``; a force-matching state point) rescales the last NPT frame to
that density and relaxes it in a discarded NVT stage (``relax`` in thermo.csv) before
production; the summary's density is then the production density, ``density_source`` says
where it came from, and ``density_npt_g_cm3``/``density_scale`` record the NPT mean density and
the ratio to it.

The MD engine is OpenMM (:class:`~cgforge.engines.openmm_md.MDRunner`) or GROMACS
(:class:`~cgforge.engines.gromacs.GromacsRunner`), with the same protocol, the same Hamiltonian
and the same output files; ``engine="auto"`` picks OpenMM on a CUDA GPU, else GROMACS where
``gmx`` is installed (several times faster on CPUs), else OpenMM on the CPU.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app

from cgforge.engines.openmm_md import MDRunner
from cgforge.engines.protocol import MDProtocol, MDResult, ProgressCallback, write_thermo_csv
from cgforge.errors import InputError, SimulationError
from cgforge.fileio import atomic_path, write_json, write_text
from cgforge.liquid_analysis import analyze, write_results
from cgforge.observables.thermo import mean_with_error
from cgforge.packing import MAX_PACKING_DENSITY_G_CM3, pack_liquid
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.trajectory import CGTrajectory
from cgforge.units import density_g_cm3

#: Packing density for molecules without a reference density, g/cm³ (NPT corrects it).
DEFAULT_PACKING_DENSITY_G_CM3 = 0.6
#: Fraction of the reference density used for packing (a slightly dilute start packs reliably).
PACKING_FRACTION = 0.9
#: Fraction of a pre-relaxed molecule's estimated density used for packing: the hull estimate
#: runs up to ~30 % above the final density of stretched molecules, whose atoms leave gaps no
#: neighbour fits in, and Packmol then runs for minutes without a solution (at 0.9 × it
#: took 5 min for one 64-molecule box); NPT compacts the dilute start within picoseconds.
PRERELAX_PACKING_FRACTION = 0.7
#: Largest cutoff relative to the smallest box edge (leaves room for NPT box fluctuations).
MAX_CUTOFF_FRACTION = 0.45
#: MD engines of ``cgforge aa``; ``auto`` is resolved by :func:`resolve_engine`.
ENGINES = ("auto", "openmm", "gromacs")
ENGINE_FILE = "engine.json"
GROMACS_WORK = "gromacs"  # GROMACS' files inside the run directory's work folder


@dataclass(frozen=True)
class AAConfig:
    """Everything that defines an all-atom reference run."""

    molecule: str | None = None  # built-in name or SMILES
    topology_file: str | None = None  # the user's GROMACS .top
    coordinates_file: str | None = None  # the user's .gro
    include_dir: str | None = None  # GROMACS force-field include directory for .top files
    n_molecules: int = 500
    packing_density_g_cm3: float | None = None
    cutoff_nm: float = 1.0
    protocol: MDProtocol = field(default_factory=MDProtocol)
    engine: str = "auto"  # "auto", "openmm" or "gromacs"
    # Randomised bonded parameters of a built-in molecule: {"seed": int, "ranges": dict of
    # cgforge.molecules.randomize.ParameterRanges (literature units, see there)}; None keeps
    # OPLS-AA.
    randomize: dict[str, Any] | None = None
    # Relax one molecule in vacuum before packing and pack at the density its relaxed volume
    # suggests (cgforge.engines.prerelax); for randomised bonded parameters.
    prerelax: bool = False

    def __post_init__(self) -> None:
        if self.protocol.production_ensemble == "npt":
            raise InputError(
                "all-atom runs produce at constant volume (nvt, nve or langevin); the npt "
                "production is for CG runs (cgforge cg)",
                parameters="production_ensemble",
            )
        if self.engine not in ENGINES:
            raise InputError(
                f"unknown engine '{self.engine}'; use one of {', '.join(ENGINES)}",
                parameters="engine",
            )
        if (self.molecule is None) == (self.topology_file is None):
            raise InputError(
                "give either a molecule (name or SMILES) or topology_file with coordinates_file",
                parameters=("topology_file", "coordinates_file"),
            )
        if self.topology_file is not None and self.coordinates_file is None:
            raise InputError(
                "topology_file needs coordinates_file (a .gro file with the positions and box)",
                parameters=("topology_file", "coordinates_file"),
            )
        if self.molecule is not None and self.n_molecules < 2:
            raise InputError(
                f"n_molecules must be at least 2, got {self.n_molecules}",
                parameters="n_molecules",
            )
        if self.molecule is not None:
            from cgforge.molecules.build import check_molecule

            check_molecule(self.molecule)  # unknown or oversized molecules: before any work
        if not 0.2 <= self.cutoff_nm <= 3.0:
            raise InputError(
                f"cutoff_nm {self.cutoff_nm} is outside 0.2-3.0 nm", parameters="cutoff_nm"
            )
        if self.randomize is not None:
            self.parameter_ranges()  # checks the seed and ranges before any work
        if self.prerelax and self.molecule is None:
            raise InputError(
                "pre-relaxation needs a built-in molecule or SMILES, not topology_file",
                parameters="topology_file",
            )

    def parameter_ranges(self) -> tuple[Any, int] | None:
        """``(ParameterRanges, seed)`` of :attr:`randomize`, or None without randomisation."""
        if self.randomize is None:
            return None
        from cgforge.molecules.randomize import ParameterRanges

        if self.molecule is None:
            raise InputError(
                "randomised bonded parameters need a built-in molecule or SMILES, not "
                "topology_file",
                parameters="topology_file",
            )
        spec = self.randomize
        if not isinstance(spec, dict) or set(spec) - {"seed", "ranges"}:
            raise InputError(
                f"randomize must be a dict {{'seed': int, 'ranges': {{...}}}}, got {spec!r}"
            )
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"randomize seed must be a non-negative integer, got {seed!r}")
        ranges = spec.get("ranges") or {}
        if not isinstance(ranges, dict):
            raise InputError(f"randomize ranges must be a dict, got {ranges!r}")
        return ParameterRanges.from_dict(ranges), seed

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["protocol"] = self.protocol.to_dict()  # the protocol's own (hash-stable) form
        if out["randomize"] is None:
            del out["randomize"]  # run directories of OPLS-AA runs keep their configuration
        if not out["prerelax"]:
            del out["prerelax"]  # and so do runs without pre-relaxation
        return out


def default_protocol(equilibration_ps: float, production_ps: float, **overrides: Any) -> MDProtocol:
    """A protocol whose sampling intervals suit the run length (≥ 100 samples, ≤ 1 ps apart)."""
    sample = min(1.0, production_ps / 100.0)
    thermo = min(1.0, max(equilibration_ps, production_ps) / 100.0)
    if equilibration_ps > 0:
        thermo = min(thermo, equilibration_ps / 20.0)
    settings: dict[str, Any] = {
        "equilibration_ps": equilibration_ps,
        "production_ps": production_ps,
        "sample_interval_ps": sample,
        "thermo_interval_ps": thermo,
        "checkpoint_interval_ps": 20.0,
    }
    settings.update(overrides)
    timestep_ps = settings.get("timestep_fs", 2.0) * 1e-3
    for key in ("sample_interval_ps", "thermo_interval_ps"):
        settings[key] = max(timestep_ps, round(settings[key] / timestep_ps) * timestep_ps)
    return MDProtocol(**settings)


@dataclass
class PreparedSystem:
    """A system ready for an engine: ``system`` for OpenMM, ``gromacs`` for GROMACS."""

    name: str
    system: openmm.System | None
    topology: app.Topology
    positions_nm: np.ndarray
    box_nm: np.ndarray
    groups: np.ndarray
    cutoff_nm: float
    notes: list[str]
    engine: str = "openmm"
    gromacs: Any = None  # cgforge.engines.gromacs.GromacsSystem for engine == "gromacs"
    prerelax: dict[str, Any] | None = None  # what the vacuum pre-relaxation found


def resolve_engine(requested: str, platform: str = "auto") -> str:
    """The engine ``"openmm"`` or ``"gromacs"`` that runs a request.

    ``"auto"``: OpenMM when an OpenMM platform was named (``platform`` other than ``auto``) or a
    CUDA platform exists; else GROMACS where ``gmx`` is on the PATH; else OpenMM on the CPU.
    ``"gromacs"`` without ``gmx`` raises :class:`InputError` with the installation hint.
    """
    if requested not in ENGINES:
        raise InputError(
            f"unknown engine '{requested}'; use one of {', '.join(ENGINES)}", parameters="engine"
        )
    if requested == "gromacs":
        from cgforge.engines.gromacs import gmx_executable

        gmx_executable()
        return "gromacs"
    if requested == "openmm" or platform.lower() != "auto":
        return "openmm"
    platforms = {
        openmm.Platform.getPlatform(i).getName().lower()
        for i in range(openmm.Platform.getNumPlatforms())
    }
    if "cuda" in platforms:
        return "openmm"
    return "gromacs" if shutil.which("gmx") is not None else "openmm"


def _effective_cutoff(requested: float, box_nm: np.ndarray, notes: list[str]) -> float:
    limit = MAX_CUTOFF_FRACTION * float(np.min(box_nm))
    if requested <= limit:
        return requested
    if limit < 0.5:
        raise InputError(
            f"the box ({np.min(box_nm):.2f} nm) is too small for a nonbonded cutoff of at least "
            "0.5 nm; use more molecules"
        )
    note = (
        f"cutoff reduced from {requested} nm to {limit:.3f} nm to fit the "
        f"{np.min(box_nm):.2f} nm box; use more molecules for the full cutoff"
    )
    notes.append(note)
    return round(limit, 4)


def prepare_builtin(
    config: AAConfig, engine: str = "openmm", workdir: str | Path | None = None
) -> PreparedSystem:
    """Type, pack and parametrise a built-in molecule or SMILES for ``engine``.

    For GROMACS the ``.top`` is written to ``workdir`` (default: the current directory).
    """
    from cgforge.engines.openmm_system import create_aa_system, openmm_topology
    from cgforge.molecules import load_molecule
    from cgforge.molecules.library import reference_density

    molecule = load_molecule(config.molecule, seed=config.protocol.seed)
    unperturbed = molecule
    randomization = config.parameter_ranges()
    if randomization is not None:
        from cgforge.molecules.randomize import randomize_molecule

        molecule = randomize_molecule(molecule, *randomization)
    ref = reference_density(molecule.name)
    prerelax_info: dict[str, Any] | None = None
    if config.prerelax:
        molecule, prerelax_info = _prerelax(
            molecule, unperturbed, ref, config.protocol.temperature_K, config.protocol.seed
        )
    density = config.packing_density_g_cm3
    if density is None:
        fraction = PACKING_FRACTION
        if prerelax_info is not None and "density_estimate_g_cm3" in prerelax_info:
            ref = prerelax_info["density_estimate_g_cm3"]
            fraction = PRERELAX_PACKING_FRACTION
        density = fraction * ref if ref else DEFAULT_PACKING_DENSITY_G_CM3
        density = min(density, PACKING_FRACTION * MAX_PACKING_DENSITY_G_CM3)
    if prerelax_info is not None:
        prerelax_info["packing_density_g_cm3"] = density
    packed = pack_liquid(molecule, config.n_molecules, density, seed=config.protocol.seed)
    box = np.full(3, packed.box_nm)
    notes: list[str] = []
    cutoff = _effective_cutoff(config.cutoff_nm, box, notes)
    topology = openmm_topology(molecule, config.n_molecules, box)
    groups = np.repeat(np.arange(config.n_molecules), molecule.n_atoms)
    positions = packed.positions_nm  # whole molecules: bonded terms are not periodic
    if engine == "gromacs":
        from cgforge.engines.gromacs import GromacsSystem

        top = Path(workdir if workdir is not None else ".") / "system.top"
        gromacs = GromacsSystem.from_molecule(molecule, config.n_molecules, top)
        return PreparedSystem(
            molecule.name,
            None,
            topology,
            positions,
            box,
            groups,
            cutoff,
            notes,
            engine="gromacs",
            gromacs=gromacs,
            prerelax=prerelax_info,
        )
    system = create_aa_system(molecule, config.n_molecules, box, cutoff_nm=cutoff)
    return PreparedSystem(
        molecule.name,
        system,
        topology,
        positions,
        box,
        groups,
        cutoff,
        notes,
        prerelax=prerelax_info,
    )


def _prerelax(
    molecule: Any,
    unperturbed: Any,
    reference_density_g_cm3: float | None,
    temperature_K: float,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """The molecule relaxed in vacuum (:func:`cgforge.engines.prerelax.prerelax_molecule`)
    and what was found: energies, volumes and, with a reference density, the density estimate
    of :func:`~cgforge.engines.prerelax.estimate_density`."""
    from cgforge.engines.prerelax import estimate_density, prerelax_molecule

    relaxed = prerelax_molecule(molecule, temperature_K=temperature_K, seed=seed)
    info = relaxed.to_dict()
    if reference_density_g_cm3:
        _, volumes = estimate_density(
            relaxed.molecule, unperturbed, reference_density_g_cm3, seed=seed
        )
        info.update(volumes)
    return relaxed.molecule, info


def prepare_gromacs(config: AAConfig, engine: str = "openmm") -> PreparedSystem:
    """The user's GROMACS system (``.top`` + ``.gro``) for ``engine``.

    OpenMM reads the topology for atom names and molecules in either case; with GROMACS the
    ``.top`` goes to ``grompp`` as it is.
    """
    top_path, gro_path = Path(config.topology_file), Path(config.coordinates_file)
    for path in (top_path, gro_path):
        if not path.is_file():
            raise InputError(f"file not found: {path}")
    try:
        gro = app.GromacsGroFile(str(gro_path))
    except Exception as exc:
        raise InputError(f"cannot read coordinates {gro_path}: {exc}") from exc
    vectors = gro.getPeriodicBoxVectors()
    if vectors is None:
        raise InputError(f"{gro_path} has no box line; a periodic liquid needs one")
    box = np.array([vectors[i][i].value_in_unit(openmm.unit.nanometer) for i in range(3)])
    off_diagonal = [
        vectors[i][j].value_in_unit(openmm.unit.nanometer)
        for i in range(3)
        for j in range(3)
        if i != j
    ]
    if any(abs(v) > 1e-8 for v in off_diagonal):
        raise InputError(f"{gro_path} has a triclinic box; cgforge handles rectangular boxes")
    kwargs = {"periodicBoxVectors": vectors}
    include_dir = config.include_dir
    if include_dir is None and shutil.which("gmx") is not None:
        from cgforge.engines.gromacs import gmx_top_dir

        found = gmx_top_dir()  # GROMACS' own force fields, as grompp finds them
        include_dir = str(found) if found is not None else None
    if include_dir:
        kwargs["includeDir"] = include_dir
    try:
        top = app.GromacsTopFile(str(top_path), **kwargs)
    except Exception as exc:
        raise InputError(
            f"cannot read topology {top_path}: {exc} (if it includes a force field, pass its "
            "directory as include_dir)",
            parameters="include_dir",
        ) from exc
    if top.topology.getNumAtoms() != len(gro.positions):
        raise InputError(
            f"{top_path} describes {top.topology.getNumAtoms()} atoms but {gro_path} has "
            f"{len(gro.positions)}; they do not belong together"
        )
    notes: list[str] = []
    cutoff = _effective_cutoff(config.cutoff_nm, box, notes)
    groups = molecule_groups(top.topology)
    positions = np.array(gro.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
    name = top_path.stem
    if engine == "gromacs":
        from cgforge.engines.gromacs import GromacsSystem

        includes = (Path(config.include_dir).resolve(),) if config.include_dir else ()
        gromacs = GromacsSystem(top_path.resolve(), top.topology, includes)
        return PreparedSystem(
            name,
            None,
            top.topology,
            positions,
            box,
            groups,
            cutoff,
            notes,
            engine="gromacs",
            gromacs=gromacs,
        )
    try:
        system = top.createSystem(
            nonbondedMethod=app.PME,
            nonbondedCutoff=cutoff * openmm.unit.nanometer,
            constraints=app.HBonds,
            ewaldErrorTolerance=5e-4,
        )
    except Exception as exc:
        raise InputError(f"OpenMM cannot build a system from {top_path}: {exc}") from exc
    return PreparedSystem(name, system, top.topology, positions, box, groups, cutoff, notes)


def molecule_groups(topology: app.Topology) -> np.ndarray:
    """Molecule index of every atom: the connected components of the bond graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = topology.getNumAtoms()
    bonds = np.array([(b[0].index, b[1].index) for b in topology.bonds()], dtype=int).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # number molecules in order of first appearance
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[labels]


def run_aa(
    config: AAConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run (or resume) an all-atom reference into ``out``; return the summary."""
    rundir = RunDirectory(out, config.to_dict(), overwrite=overwrite)
    status = rundir.prepare()
    if status == "complete":
        return rundir.read_summary()
    engine = _run_engine(config, rundir.work)
    if config.molecule is not None:
        prepared = prepare_builtin(config, engine, rundir.work)
    else:
        prepared = prepare_gromacs(config, engine)
    if engine == "gromacs":
        from cgforge.engines.gromacs import GromacsRunner

        runner = GromacsRunner(
            prepared.gromacs,
            prepared.positions_nm,
            prepared.box_nm,
            prepared.groups,
            config.protocol,
            rundir.work / GROMACS_WORK,
            cutoff_nm=prepared.cutoff_nm,
            progress=progress,
        )
        result = runner.run()
    else:
        runner = MDRunner(
            prepared.system,
            prepared.topology,
            prepared.positions_nm,
            prepared.box_nm,
            prepared.groups,
            config.protocol,
            rundir.work,
            progress=progress,
        )
        try:
            result = runner.run()
        except openmm.OpenMMException as exc:
            raise SimulationError(f"OpenMM stopped the run: {exc}") from exc
    return finish_aa(config, rundir, prepared, result)


def _run_engine(config: AAConfig, work: Path) -> str:
    """The engine of this run directory: resolved once, then kept so a resume uses the same."""
    path = work / ENGINE_FILE
    if path.exists():
        engine = json.loads(path.read_text()).get("engine")
        if engine == "gromacs":
            from cgforge.engines.gromacs import gmx_executable

            gmx_executable()
        if engine in ("openmm", "gromacs"):
            return engine
    engine = resolve_engine(config.engine, config.protocol.platform)
    write_json(path, {"requested": config.engine, "engine": engine})
    return engine


def finish_aa(
    config: AAConfig, rundir: RunDirectory, prepared: PreparedSystem, result: MDResult
) -> dict[str, Any]:
    out = rundir.path
    box = np.tile(result.box_nm, (len(result.times_ps), 1))
    traj = CGTrajectory(
        positions_nm=result.bead_positions_nm,
        box_nm=box,
        times_ps=result.times_ps,
        masses_amu=result.bead_masses_amu,
        forces_kj_mol_nm=result.bead_forces_kj_mol_nm,
    )
    thermo = result.thermo
    eq = thermo["stage"] == 0
    prod = thermo["stage"] == 1
    eq_density = thermo["density_g_cm3"][eq]
    density_series = eq_density[len(eq_density) // 2 :] if len(eq_density) >= 2 else None
    fixed = _fixed_density_fields(config.protocol, result, density_series)
    if fixed:
        density_series = None  # the production box's density: the fixed one
    analysis = analyze(traj, density_series_g_cm3=density_series)
    write_results(
        out, analysis, traj, title=f"{prepared.name}: all-atom reference, centres of mass"
    )
    write_thermo_csv(out / "thermo.csv", thermo)
    _write_structure(out, prepared, result)
    if prepared.engine == "gromacs":
        _keep_gromacs_files(out, rundir.work / GROMACS_WORK, prepared)
    pressure, pressure_err = mean_with_error(thermo["pressure_bar"][prod])
    temperature, temperature_err = mean_with_error(thermo["temperature_K"][prod])
    summary: dict[str, Any] = {
        "molecule": prepared.name,
        "source": "cgforge aa",
        "temperature_K": config.protocol.temperature_K,
        "temperature_measured_K": temperature,
        "temperature_err_K": temperature_err,
        "pressure_target_bar": config.protocol.pressure_bar,
        "pressure_bar": pressure,
        "pressure_err_bar": pressure_err,
        "density_source": "NPT equilibration, second half"
        if density_series is not None
        else "production box",
        **analysis.summary_fields(),
        **fixed,
        "production_ensemble": config.protocol.production_ensemble,
        "production_ps": config.protocol.production_ps,
        "cutoff_nm": prepared.cutoff_nm,
        "has_forces": result.bead_forces_kj_mol_nm is not None,
        "engine": prepared.engine,
        "platform": result.platform,
        "ns_per_day": result.ns_per_day,
        "wall_s": result.wall_s,
        "notes": prepared.notes,
        **({"prerelax": prepared.prerelax} if prepared.prerelax is not None else {}),
        "files": {
            "rdf": "rdf.csv",
            "msd": "msd.csv",
            "thermo": "thermo.csv",
            "topology": "topology.pdb",
            "trajectory": "trajectory.dcd" if config.protocol.save_particles else None,
            "cg_trajectory": "cg_trajectory.npz",
            "system": "system.xml",
            "plot": "observables.png",
        },
        "provenance": collect(config.to_dict(), seed=config.protocol.seed),
    }
    if prepared.engine == "gromacs":
        summary["files"].update(
            {"system": "system.top", "coordinates": "system.gro", "run_input": "system.tpr"}
        )
        summary["provenance"]["versions"]["gromacs"] = result.platform.split(" ", 1)[-1]
    rundir.write_summary(summary)
    rundir.clean_work()
    return summary


def _fixed_density_fields(
    protocol: MDProtocol, result: MDResult, npt_series: np.ndarray | None
) -> dict[str, Any]:
    """Summary fields of a fixed production density (none without one): its source, the
    target, the mean NPT density it refers to and the ratio of the two."""
    if not protocol.fixed_density:
        return {}
    mass = float(np.sum(result.bead_masses_amu))
    production = density_g_cm3(mass, float(np.prod(result.box_nm)))
    absolute = protocol.production_density_g_cm3
    npt = None if result.npt_volume_nm3 is None else density_g_cm3(mass, result.npt_volume_nm3)
    if absolute is not None:
        source, target = "fixed: production_density_g_cm3", absolute
    else:
        source = "fixed: production_density_scale x NPT mean density (second half)"
        target = production if npt is None else protocol.production_density_scale * npt
    fields: dict[str, Any] = {
        "density_source": source,
        "density_target_g_cm3": target,
        "density_relax_ps": protocol.relax_steps * protocol.dt_ps,
    }
    if npt is not None:
        fields["density_npt_g_cm3"] = npt
        if npt_series is not None:
            fields["density_npt_err_g_cm3"] = mean_with_error(npt_series)[1]
        fields["density_scale"] = production / npt
    return fields


def _write_structure(out: Path, prepared: PreparedSystem, result: MDResult) -> None:
    """topology.pdb (with bonds and the production box), trajectory.dcd and, for OpenMM,
    system.xml."""
    topology = prepared.topology
    box = result.box_nm
    topology.setPeriodicBoxVectors(
        [openmm.Vec3(box[0], 0, 0), openmm.Vec3(0, box[1], 0), openmm.Vec3(0, 0, box[2])]
    )
    frames = result.iter_particle_frames()
    first = next(frames, None)
    positions = first[1] if first is not None else prepared.positions_nm
    with atomic_path(out / "topology.pdb") as tmp, open(tmp, "w") as handle:
        app.PDBFile.writeFile(topology, positions * openmm.unit.nanometer, handle, keepIds=False)
    if first is not None:
        with atomic_path(out / "trajectory.dcd") as tmp, open(tmp, "wb") as handle:
            dt_ps = (
                float(result.times_ps[1] - result.times_ps[0]) if len(result.times_ps) > 1 else 1.0
            )
            dcd = app.DCDFile(
                handle, topology, dt_ps * openmm.unit.picosecond, firstStep=0, interval=1
            )
            dcd.writeModel(positions * openmm.unit.nanometer)
            for _t, xyz in frames:
                dcd.writeModel(xyz * openmm.unit.nanometer)
    if prepared.system is not None:
        write_text(out / "system.xml", openmm.XmlSerializer.serialize(prepared.system))


def _keep_gromacs_files(out: Path, work: Path, prepared: PreparedSystem) -> None:
    """system.top, system.gro and system.tpr: the GROMACS topology, the production start and
    the production run input (``gmx mdrun -s system.tpr`` repeats the production)."""
    sources = {
        "system.top": prepared.gromacs.top_path,
        "system.gro": work / "production-start.gro",
        "system.tpr": work / "production.tpr",
    }
    for name, source in sources.items():
        with atomic_path(out / name) as tmp:
            shutil.copyfile(source, tmp)
