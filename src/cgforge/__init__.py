"""cgforge: coarse-grained models of molecular liquids that keep all-atom structure and mobility.

Internal units are OpenMM's throughout: nm, ps, kJ/mol, K, amu, elementary charge, bar.
Conversions happen only at file and command-line boundaries (see :mod:`cgforge.units`).
"""

__version__ = "0.1.0"
