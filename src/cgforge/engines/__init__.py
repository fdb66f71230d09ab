"""Simulation engines: staged MD of all-atom and coarse-grained liquids on OpenMM, GROMACS,
LAMMPS and PyTorch.

* :mod:`.protocol`: the staged MD protocol every engine runs
  (:class:`~cgforge.engines.protocol.MDProtocol`) and the result every engine returns
  (:class:`~cgforge.engines.protocol.MDResult`), with its thermo columns;
* :mod:`.openmm_md`: the OpenMM runner of that protocol (all-atom and CG);
  :mod:`.openmm_system`: OpenMM systems of N copies of one OPLS-AA molecule (the all-atom
  reference); :mod:`.gromacs`: GROMACS as the other all-atom engine;
* :mod:`.cg_engine`: one interface for every CG engine, a CG system and a protocol in, one
  result out: LAMMPS (:mod:`.lammps_md`, library loading in :mod:`.lammps_lib`), OpenMM
  (systems of :mod:`.cg_system` run by :mod:`.openmm_md`) and torch (:mod:`.torch_cg`, the
  adapter of the integrator :mod:`.torch_md`); :mod:`.cg_start` reads CG start
  configurations from structure files;
* :mod:`.prerelax`: vacuum pre-relaxation of one molecule before its liquid is packed.

Nothing is imported here, so that importing one engine does not import the others.
"""
