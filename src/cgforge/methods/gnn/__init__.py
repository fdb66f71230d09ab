"""Torch energy models for coarse-grained beads: interface, neighbour lists, models, training.

:mod:`~cgforge.methods.gnn.base`
    :class:`EnergyModel` (positions, box → energy in kJ/mol; forces and virial by autograd),
    the model registry and the model file format.
:mod:`~cgforge.methods.gnn.neighbors`
    minimum-image neighbour pairs in an orthorhombic box (brute force and cell list).
:mod:`~cgforge.methods.gnn.pair`
    tabulated and Lennard-Jones pair models (``"pair_table"``, ``"lj"``).

Graph neural networks (SchNet, HIP-NN-TS), priors and force-matching training live in their
own submodules; import them directly. Molecular dynamics with any of these models is
:mod:`cgforge.engines.torch_md`.
"""

from cgforge.methods.gnn.base import (
    EnergyModel,
    build_model,
    load_model,
    register_model,
    registered_models,
    save_model,
)
from cgforge.methods.gnn.neighbors import (
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
