"""Learned CG models from the synthetic force-field database.

* :mod:`.mobility` — the mobility network (bead mass, D, g(r)) → U(r);
* :mod:`.params` — all-atom bonded parameters → the IBI potential (structure-preserving) or the
  potential of a record whose CG dynamics match (the "pairs" model, dynamics-preserving);
* :mod:`.acceleration` — (parameters, D_AA) → the IBI acceleration factor (random forest and
  network);
* :mod:`.dataset` — records, targets and pairs from a database; :mod:`.network` — k-fold MLP
  ensembles, learning curves, input domain; :mod:`.model_io` — model directories;
  :mod:`.prediction` — the simulation-ready predicted table; :mod:`.synthetic` — a database with
  a known ground truth for tests and benchmarks (not physics data).

PyTorch is imported only when a network is built or loaded.
"""

from cgforge.methods.mobility.acceleration import AccelerationModel, train_acceleration
from cgforge.methods.mobility.dataset import (
    G_STRUCTURAL,
    MIN_RECORDS,
    find_pairs,
    load_mobility_data,
    load_parameter_data,
    read_records,
)
from cgforge.methods.mobility.mobility import MobilityModel, train_mobility
from cgforge.methods.mobility.model_io import FORMAT_NAME, FORMAT_VERSION, read_manifest
from cgforge.methods.mobility.network import TrainConfig
from cgforge.methods.mobility.params import ParamsModel, train_params_to_potential
from cgforge.methods.mobility.prediction import Prediction, simulation_table

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "G_STRUCTURAL",
    "MIN_RECORDS",
    "AccelerationModel",
    "MobilityModel",
    "ParamsModel",
    "Prediction",
    "TrainConfig",
    "find_pairs",
    "load_mobility_data",
    "load_parameter_data",
    "read_manifest",
    "read_records",
    "simulation_table",
    "train_acceleration",
    "train_mobility",
    "train_params_to_potential",
]
