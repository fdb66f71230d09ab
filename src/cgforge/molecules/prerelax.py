"""Former home of the vacuum pre-relaxation, now :mod:`cgforge.engines.prerelax`.

Pre-relaxation runs OpenMM molecular dynamics on an all-atom system
(:func:`cgforge.engines.openmm_system.create_aa_system`), so it belongs to the engines layer,
not to the molecule data of :mod:`cgforge.molecules`. This module only keeps the old import
path working for :mod:`cgforge.workflows.aa` until that module imports
:mod:`cgforge.engines.prerelax` itself; it is the one allow-listed upward edge of the layer
test (``tests/test_layers.py``). New code imports :mod:`cgforge.engines.prerelax`.
"""

from __future__ import annotations

from cgforge.engines.prerelax import (
    GRID_SPACING_NM,
    PrerelaxResult,
    estimate_density,
    hull_volume_nm3,
    prerelax_molecule,
    vdw_volume_nm3,
)

__all__ = [
    "GRID_SPACING_NM",
    "PrerelaxResult",
    "estimate_density",
    "hull_volume_nm3",
    "prerelax_molecule",
    "vdw_volume_nm3",
]
