"""Torch energy models for coarse-grained beads: graph neural networks, priors, training.

The model interface, the neighbour lists and the pair models are potentials that the torch
MD engines use too, so they live in :mod:`cgforge.potentials.neural` (re-exported here):

:mod:`~cgforge.potentials.neural.base`
    :class:`EnergyModel` (positions, box → energy in kJ/mol; forces and virial by autograd),
    the model registry and the model file format.
:mod:`~cgforge.potentials.neural.neighbors`
    minimum-image neighbour pairs in an orthorhombic box (brute force and cell list).
:mod:`~cgforge.potentials.neural.pair`
    tabulated and Lennard-Jones pair models (``"pair_table"``, ``"lj"``).

Graph neural networks (SchNet, HIP-NN-TS), priors and force-matching training live in the
submodules of this package; import them directly. Molecular dynamics with any of these models
is :mod:`cgforge.engines.torch_md`.
"""

from cgforge.potentials.neural.base import (
    EnergyModel,
    build_model,
    load_model,
    register_model,
    registered_models,
    save_model,
)
from cgforge.potentials.neural.neighbors import (
    NeighborCache,
    full_pairs,
    neighbor_pairs,
    use_neighbor_cache,
)

__all__ = [
    "EnergyModel",
    "NeighborCache",
    "build_model",
    "full_pairs",
    "load_model",
    "neighbor_pairs",
    "register_model",
    "registered_models",
    "save_model",
    "use_neighbor_cache",
]
