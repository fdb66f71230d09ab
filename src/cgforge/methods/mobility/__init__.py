"""Learned CG models from the synthetic force-field database.

* :mod:`.potential_from_mobility` — the mobility network (bead mass, D, g(r)) → U(r);
* :mod:`.params` — all-atom bonded parameters → the IBI potential (structure-preserving) or the
  potential of a record whose CG dynamics match (the "pairs" model, dynamics-preserving);
* :mod:`.acceleration` — (parameters, D_AA) → the IBI acceleration factor (random forest and
  network);
* :mod:`.dataset` — targets and pairs from the records of a database; :mod:`.network` —
  k-fold MLP ensembles, learning curves, input domain; :mod:`.model_io` — model directories;
  :mod:`.prediction` — the simulation-ready predicted table.

The methods work on records already read (:class:`RecordSet`) and import nothing of the
database: the store layer reads them (:mod:`cgforge.database.learning`), the training entry
points that take a database path are :mod:`cgforge.workflows.train`
(``cgforge train ...``), and :mod:`cgforge.database.synthetic` builds a database with a known
ground truth for tests and benchmarks (not physics data).

PyTorch is imported only when a network is built or loaded.
"""

from cgforge.methods.mobility.acceleration import AccelerationModel, fit_acceleration
from cgforge.methods.mobility.dataset import (
    G_STRUCTURAL,
    MIN_RECORDS,
    RecordSet,
    find_pairs,
    mobility_data,
    parameter_data,
)
from cgforge.methods.mobility.model_io import FORMAT_NAME, FORMAT_VERSION, read_manifest
from cgforge.methods.mobility.network import EnsembleTrainConfig
from cgforge.methods.mobility.params import ParamsModel, fit_params_to_potential
from cgforge.methods.mobility.potential_from_mobility import MobilityModel, fit_mobility
from cgforge.methods.mobility.prediction import Prediction, simulation_table

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "G_STRUCTURAL",
    "MIN_RECORDS",
    "AccelerationModel",
    "EnsembleTrainConfig",
    "MobilityModel",
    "ParamsModel",
    "Prediction",
    "RecordSet",
    "find_pairs",
    "fit_acceleration",
    "fit_mobility",
    "fit_params_to_potential",
    "mobility_data",
    "parameter_data",
    "read_manifest",
    "simulation_table",
]
