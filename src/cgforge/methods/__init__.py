"""Methods that derive coarse-grained potentials or dynamics from an all-atom reference.

Each method is its own module, imported where it is used (the package imports nothing, so the
command line starts fast):

* :mod:`cgforge.methods.ibi`: iterative Boltzmann inversion with a pressure correction.
* :mod:`cgforge.methods.force_data` and :mod:`cgforge.methods.force_matching`: mapped-force
  datasets and linear force matching (MS-CG, B-spline pair forces).
* :mod:`cgforge.methods.gnn`: graph-neural-network CG force fields (SchNet, HIP-NN-TS), their
  repulsive prior, training and hyperparameter studies.
* :mod:`cgforge.methods.mobility`: networks trained on the synthetic database (mobility
  network, the parameter → potential models, the acceleration-factor predictors).
* :mod:`cgforge.methods.friction` and :mod:`cgforge.methods.rescale`: structure-keeping
  dynamics baselines (fitted Langevin friction, time rescaling by the acceleration factor).
"""
