"""Torch energy models as CG potentials: the interface, the neighbour lists and the pair models.

These are data definitions that the torch MD engines (:mod:`cgforge.engines.torch_md`,
:mod:`cgforge.engines.torch_cg`) and the learning methods (:mod:`cgforge.methods.gnn`) share,
so they live with the other potentials, below both:

:mod:`~cgforge.potentials.neural.base`
    :class:`EnergyModel` (positions, box → energy in kJ/mol; forces and virial by autograd),
    the model registry and the model file format.
:mod:`~cgforge.potentials.neural.neighbors`
    minimum-image neighbour pairs in an orthorhombic box (brute force and cell list).
:mod:`~cgforge.potentials.neural.pair`
    tabulated and Lennard-Jones pair models (``"pair_table"``, ``"lj"``).

Every submodule needs PyTorch; this package itself imports nothing, so
``import cgforge.potentials`` works without it. The networks (SchNet, HIP-NN-TS) register
themselves from :mod:`cgforge.methods.gnn`; :func:`~cgforge.potentials.neural.base.build_model`
imports them by name on demand (:data:`~cgforge.potentials.neural.base.BUILTIN_MODEL_MODULES`).
"""
