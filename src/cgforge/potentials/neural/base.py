"""The interface of every torch energy model of cgforge, its registry and its file format.

An :class:`EnergyModel` maps bead positions (N, 3) in nm and the edges (3,) of an orthorhombic
periodic box in nm to one potential energy in kJ/mol. Forces F = −dE/dx (kJ/mol/nm) and the
virial come from autograd, so a model only writes ``forward``. Models are chosen by registry
name (:func:`register_model`, :func:`build_model`) and stored as one file
(:func:`save_model`, :func:`load_model`)::

    {"format": "cgforge-energy-model", "version": 1, "name": <registry name>,
     "hyperparameters": {...}, "state_dict": {...}, "metadata": {...}}

``hyperparameters`` are the keyword arguments of the model's constructor (plain JSON);
``metadata`` is plain JSON about where the model comes from. By convention it holds
``cutoff_nm``, ``bead_mass_amu``, ``molecule``, ``training_state_points`` (a list of
``{"temperature_K": …, "density_g_cm3": …}``) and ``units``.

Models that should see the box-scaling virial (pressure in MD) must build their pair vectors
from ``box_nm`` with differentiable operations, as
:func:`cgforge.potentials.neural.neighbors.neighbor_pairs` does.
"""

from __future__ import annotations

import importlib
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from cgforge.errors import InputError
from cgforge.fileio import atomic_path

#: ``format`` entry of a model file.
MODEL_FORMAT = "cgforge-energy-model"
#: ``version`` entry of a model file written by this code.
MODEL_VERSION = 1

#: Modules that register models when imported; :func:`build_model` imports them on demand.
BUILTIN_MODEL_MODULES = (
    "cgforge.potentials.neural.pair",
    "cgforge.methods.gnn.schnet",
    "cgforge.methods.gnn.hipnn",
    "cgforge.methods.gnn.prior",
)

_REGISTRY: dict[str, type[EnergyModel]] = {}
#: What torch.load raises on damaged or foreign archives.
_UNREADABLE = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    KeyError,
    AttributeError,
    TypeError,
    IndexError,
)

_ModelT = TypeVar("_ModelT", bound="EnergyModel")


class EnergyModel(torch.nn.Module):
    """A potential energy E(positions, box) in kJ/mol of beads in a periodic orthorhombic box.

    Subclasses set ``cutoff_nm`` (the interaction range in nm, at most half the shortest box
    edge of a system they are used in), implement :meth:`forward` and
    :meth:`hyperparameters`, and are registered with :func:`register_model`.
    """

    #: Registry name, set by :func:`register_model`.
    model_name: ClassVar[str] = ""
    #: Interaction range in nm.
    cutoff_nm: float

    def forward(self, positions_nm: Tensor, box_nm: Tensor) -> Tensor:  # pragma: no cover
        """Potential energy (scalar tensor, kJ/mol) of positions (N, 3) nm in box (3,) nm."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:  # pragma: no cover
        """Constructor keyword arguments (plain JSON) that rebuild this model's architecture."""
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters/buffers (default dtype if it has none)."""
        for tensor in list(self.parameters()) + list(self.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters/buffers (CPU if it has none)."""
        for tensor in list(self.parameters()) + list(self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def energy_and_forces(
        self, positions_nm: Tensor, box_nm: Tensor, create_graph: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Energy (kJ/mol) and forces F = −dE/dx (N, 3) in kJ/mol/nm.

        With ``create_graph=False`` both are detached values. With ``create_graph=True`` the
        forces keep their graph (for force-matching losses that train the parameters) and the
        energy is returned with its graph as well. If ``positions_nm`` already requires
        gradients it is used as it is, otherwise a detached copy is differentiated.
        """
        pos = positions_nm if positions_nm.requires_grad else positions_nm.detach().requires_grad_()
        with torch.enable_grad():
            energy = self(pos, box_nm)
            (grad,) = torch.autograd.grad(energy, pos, create_graph=create_graph)
        if create_graph:
            return energy, -grad
        return energy.detach(), -grad.detach()

    def energy_forces_virial(
        self, positions_nm: Tensor, box_nm: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Energy (kJ/mol), forces (N, 3) kJ/mol/nm and virial W = Σ r_ij·f_ij in kJ/mol.

        The virial is −dE/dε for a uniform scaling of positions and box by (1 + ε) at ε = 0,
        which equals Σ_pairs r_ij·f_ij for pair potentials and generalises it to many-body
        models. The configurational pressure is W / (3V). All three are detached values.
        """
        pos = positions_nm.detach().requires_grad_()
        eps = torch.zeros((), dtype=pos.dtype, device=pos.device, requires_grad=True)
        box = box_nm.detach().to(dtype=pos.dtype, device=pos.device)
        with torch.enable_grad():
            scale = 1.0 + eps
            energy = self(pos * scale, box * scale)
            grad_x, grad_eps = torch.autograd.grad(energy, (pos, eps), allow_unused=True)
        if grad_eps is None:
            grad_eps = torch.zeros((), dtype=pos.dtype, device=pos.device)
        return energy.detach(), -grad_x.detach(), -grad_eps.detach()


def register_model(name: str) -> Callable[[type[_ModelT]], type[_ModelT]]:
    """Class decorator: register an :class:`EnergyModel` subclass under ``name``."""

    def decorate(cls: type[_ModelT]) -> type[_ModelT]:
        if not (isinstance(cls, type) and issubclass(cls, EnergyModel)):
            raise TypeError(f"register_model({name!r}) decorates EnergyModel subclasses only")
        known = _REGISTRY.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name {name!r} is already registered by {known.__qualname__}")
        cls.model_name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _import_builtins() -> None:
    for module in BUILTIN_MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def registered_models() -> list[str]:
    """Names of all registered models (built-in modules imported first)."""
    _import_builtins()
    return sorted(_REGISTRY)


def build_model(name: str, **hyperparameters: Any) -> EnergyModel:
    """Build the registered model ``name`` from its constructor keyword arguments."""
    if name not in _REGISTRY:
        _import_builtins()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise InputError(
            f"unknown energy model {name!r}; known models: {', '.join(sorted(_REGISTRY))}"
        )
    try:
        return cls(**hyperparameters)
    except TypeError as exc:
        raise InputError(f"cannot build model {name!r} from its hyperparameters: {exc}") from exc


def _plain_json(value: Any, what: str) -> Any:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} must be plain JSON data (numbers, strings, lists, dicts): {exc}"
        ) from exc
    return json.loads(text)


def save_model(model: EnergyModel, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``model`` with ``metadata`` (plain JSON) to ``path`` atomically; return the path."""
    if not isinstance(model, EnergyModel) or not model.model_name:
        raise InputError("only registered EnergyModel instances can be saved (use @register_model)")
    target = Path(path)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "name": model.model_name,
        "hyperparameters": _plain_json(model.hyperparameters(), "model hyperparameters"),
        "state_dict": state,
        "metadata": _plain_json(dict(metadata), "model metadata"),
    }
    try:
        with atomic_path(target) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise InputError(f"cannot write model file '{target}': {exc.strerror or exc}") from exc
    return target


def load_model(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[EnergyModel, dict[str, Any]]:
    """Read a model file written by :func:`save_model`: ``(model in eval mode, metadata)``.

    The model gets the dtype of the saved floating-point tensors and lives on
    ``map_location``. Raises InputError for a missing file, a file that is not a cgforge
    model, another format version, or weights that do not fit the named architecture.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"model file '{source}' does not exist; give the path of a saved model")
    with open(source, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":
        raise InputError(
            f"'{source}' is not a cgforge model file (not a torch archive); "
            "save models with cgforge.potentials.neural.base.save_model"
        )
    try:
        payload = torch.load(source, map_location=map_location, weights_only=True)
    except _UNREADABLE as exc:
        raise InputError(
            f"'{source}' is not a cgforge model file (torch cannot read it: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(
            f"'{source}' is not a cgforge model file (no format '{MODEL_FORMAT}'); "
            "save models with cgforge.potentials.neural.base.save_model"
        )
    version = payload.get("version")
    if version != MODEL_VERSION:
        raise InputError(
            f"'{source}' has model format version {version}, this cgforge reads version "
            f"{MODEL_VERSION}; use the cgforge release that wrote it or re-train the model"
        )
    missing = [k for k in ("name", "hyperparameters", "state_dict", "metadata") if k not in payload]
    if missing:
        raise InputError(f"model file '{source}' lacks {', '.join(missing)}; it is damaged")
    model = build_model(str(payload["name"]), **dict(payload["hyperparameters"]))
    state: dict[str, Tensor] = payload["state_dict"]
    dtypes = [t.dtype for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
    if dtypes:
        model = model.to(dtype=dtypes[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(
            f"the weights in '{source}' do not fit model {payload['name']!r} built from its "
            f"hyperparameters: {str(exc).splitlines()[0]}"
        ) from exc
    model = model.to(map_location)
    model.eval()
    metadata = dict(payload["metadata"])
    return model, metadata
