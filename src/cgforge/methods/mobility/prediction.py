"""A predicted CG potential: the simulation-ready table, its uncertainty band and its OOD flag.

The table (:func:`simulation_table`) is the ensemble-mean U(r) on the potential grid from the
structural onset to the model's cutoff, tapered to U = F = 0 at the cutoff over
:data:`TAPER_NM` (:meth:`~cgforge.potentials.table.TabulatedPotential.smooth_cutoff`, as IBI
tables are) and continued to r = 0 by the r⁻¹² wall of
:meth:`~cgforge.potentials.table.TabulatedPotential.extend_repulsive`, joined with continuous U
and F at the first grid point with a repulsive force. A prediction with no repulsive force at
all cannot be walled and raises :class:`~cgforge.errors.SimulationError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import SimulationError
from cgforge.fileio import write_columns_csv, write_json
from cgforge.potentials.io import write_csv
from cgforge.potentials.table import TabulatedPotential

__all__ = ["TAPER_NM", "Prediction", "simulation_table"]

#: Width of the taper of predicted tables to zero at the cutoff, nm (the IBI default).
TAPER_NM = 0.1


def simulation_table(
    r_nm: NDArray[np.float64], u_kj_mol: NDArray[np.float64], start_nm: float, cutoff_nm: float
) -> TabulatedPotential:
    """The predicted U on the uniform grid ``r_nm`` made simulation-ready (module docstring)."""
    r = np.asarray(r_nm, dtype=np.float64)
    u = np.asarray(u_kj_mol, dtype=np.float64)
    keep = (r >= start_nm - 1e-9) & (r <= cutoff_nm + 1e-9)
    if np.count_nonzero(keep) < 8:
        raise SimulationError(
            f"the predicted potential spans only {np.count_nonzero(keep)} grid points between "
            f"its onset {start_nm:.4g} nm and cutoff {cutoff_nm:.4g} nm; the input g(r) starts "
            "too late for this model"
        )
    raw = TabulatedPotential(r[keep], u[keep], cutoff_nm=float(r[keep][-1]))
    width = min(TAPER_NM, 0.5 * (raw.cutoff_nm - raw.r_min_nm))
    tapered = raw.smooth_cutoff(width)
    repulsive = np.flatnonzero(tapered.f_kj_mol_nm[:-1] > 0.0)
    if repulsive.size == 0:
        raise SimulationError(
            "the predicted potential has no repulsive force anywhere below its cutoff; it cannot "
            "hold a liquid (the input is likely outside the model's training data)"
        )
    return tapered.extend_repulsive(0.0, match_at_nm=float(tapered.r_nm[int(repulsive[0])]))


@dataclass(frozen=True)
class Prediction:
    """A predicted one-bead CG potential.

    ``potential``: the simulation-ready table (wall below ``start_nm``, taper at the cutoff);
    ``r_nm``, ``u_kj_mol``, ``u_std_kj_mol``: the ensemble mean and spread (member standard
    deviation) on the model's output grid from ``start_nm`` to the cutoff (nm, kJ/mol);
    ``out_of_distribution`` and ``ood_reasons``: whether and why the input lies outside the
    training data; ``inputs``: what was given; ``model``: kind, path and format of the model.
    """

    potential: TabulatedPotential
    r_nm: NDArray[np.float64]
    u_kj_mol: NDArray[np.float64]
    u_std_kj_mol: NDArray[np.float64]
    start_nm: float
    out_of_distribution: bool
    ood_reasons: tuple[str, ...]
    inputs: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data summary (no arrays beyond the band's extrema)."""
        return {
            "out_of_distribution": self.out_of_distribution,
            "ood_reasons": list(self.ood_reasons),
            "inputs": self.inputs,
            "model": self.model,
            "start_nm": self.start_nm,
            "cutoff_nm": self.potential.cutoff_nm,
            "u_std_max_kj_mol": float(np.max(self.u_std_kj_mol)),
            "u_std_mean_kj_mol": float(np.mean(self.u_std_kj_mol)),
            "u_min_kj_mol": float(np.min(self.u_kj_mol)),
        }

    def write(self, out: str | Path, *, stem: str = "predicted_potential") -> dict[str, str]:
        """Write ``STEM.csv`` (the table, :func:`cgforge.potentials.io.write_csv`),
        ``STEM_uncertainty.csv`` (``r_nm,U_kJ_mol,U_std_kJ_mol``) and ``prediction.json``
        into ``out``; returns the file names by role."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        table = f"{stem}.csv"
        band = f"{stem}_uncertainty.csv"
        source = self.model.get("path", "a cgforge model")
        write_csv(
            folder / table,
            self.potential,
            provenance=f"cgforge {self.model.get('kind', 'learned')} model {source}",
        )
        write_columns_csv(
            folder / band,
            ("r_nm", "U_kJ_mol", "U_std_kJ_mol"),
            (self.r_nm, self.u_kj_mol, self.u_std_kj_mol),
        )
        write_json(folder / "prediction.json", json.loads(json.dumps(self.to_dict())))
        return {"potential": table, "uncertainty": band, "prediction": "prediction.json"}
