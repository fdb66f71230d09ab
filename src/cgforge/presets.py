"""Run presets: every setting of an all-atom → IBI → CG run, by name.

One home for the presets that ``cgforge run`` (:mod:`cgforge.workflows.run`), the database's
stage records (:data:`cgforge.database.stages.STAGE_PRESETS`) and ``cgforge compare`` (the CG
part, :data:`cgforge.workflows.compare.COMPARE_PRESETS`) use:

* ``tiny``: a check that every stage runs (40 molecules, ps-long runs, one IBI iteration);
  its numbers mean nothing. The database tests generate their records with it.
* ``quick``: a small, short protocol for a desktop CPU (about 10–20 minutes for
  3-methylpentane on two cores with OpenMM, less with GROMACS): a meaningful but noisy
  answer. Its IBI spends the cheap CG sampling (LAMMPS) on 600 beads and 50 ps per iteration,
  on bins chosen from the target's own noise (``bin_noise_fraction``), which no CG sampling
  lowers. The all-atom frames are 0.1 ps apart: pair distances cross a bin within a fraction
  of a picosecond, so 600 frames of the same 60 ps halve that noise against 100 (the target's
  floor: 1.0 % instead of 2.2 % at 0.006 nm bins, 0.5 % instead of 1.1 % at 0.024 nm;
  ``benchmarks/ibi_quick.py``); a short reference gets wide bins, the shipped benzene one
  keeps 0.006 nm. ΔU is smoothed over 0.03 nm only (5 points at 0.006 nm, none on wider
  bins: a 5-point filter over 0.09 nm blunts the first peak's rise, 1.6 % against 1.4 % at
  0.018 nm bins), and the update is undamped (0.8 takes two more iterations to the same
  deviation).
* ``standard``: the publication protocol (500 molecules, ns-scale AA production, 1,000 CG
  beads, long IBI iterations) for a GPU or a cluster node.

The presets compose method settings (:class:`~cgforge.methods.ibi.IBIConfig`), so this module
sits in the methods layer: the store and the workflows import it, it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from cgforge.errors import InputError
from cgforge.methods.ibi import IBIConfig

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """All settings of an AA → IBI → CG run (``aa_sample_interval_ps``: the all-atom frames'
    spacing; None: :func:`~cgforge.workflows.aa.default_protocol`'s run/100, at most 1 ps)."""

    name: str
    n_molecules: int
    aa_equilibration_ps: float
    aa_production_ps: float
    cg_beads: int
    ibi: IBIConfig
    cg_equilibration_ps: float
    cg_production_ps: float
    aa_sample_interval_ps: float | None = None


#: The presets by name: ``tiny`` (a check), ``quick`` (desktop CPU), ``standard`` (GPU/cluster).
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        n_molecules=40,
        aa_equilibration_ps=2.0,
        aa_production_ps=6.0,
        cg_beads=64,
        ibi=IBIConfig(max_iterations=1, equilibration_ps=1.0, production_ps=4.0),
        cg_equilibration_ps=2.0,
        cg_production_ps=8.0,
    ),
    "quick": Preset(
        name="quick",
        n_molecules=100,
        aa_equilibration_ps=30.0,
        aa_production_ps=60.0,
        cg_beads=600,
        ibi=IBIConfig(
            max_iterations=30,
            patience=6,
            damping=1.0,
            bin_noise_fraction=0.5,
            smoothing_nm=0.03,
            equilibration_ps=5.0,
            production_ps=50.0,
        ),
        cg_equilibration_ps=20.0,
        cg_production_ps=100.0,
        aa_sample_interval_ps=0.1,
    ),
    "standard": Preset(
        name="standard",
        n_molecules=500,
        aa_equilibration_ps=500.0,
        aa_production_ps=2000.0,
        cg_beads=1000,
        ibi=IBIConfig(max_iterations=50, equilibration_ps=20.0, production_ps=200.0),
        cg_equilibration_ps=100.0,
        cg_production_ps=1000.0,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (a key of :data:`PRESETS`); InputError for another name."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}") from None
