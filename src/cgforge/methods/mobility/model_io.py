"""Model directories of the learned CG models: one folder per trained model, written atomically.

Layout (every model kind)::

    MODEL_DIR/
      model.json            manifest: format name + version, kind, cgforge version, learning grids,
                            hyperparameters, feature/target description, ensemble members,
                            out-of-distribution thresholds, training-data summary, metrics,
                            provenance; written last inside the staging folder
      arrays.npz            standardisation statistics and other arrays (float64), by name
      weights.pt            torch state dicts of the ensemble members ({"members": [...]})
      forest.pkl            (acceleration models) the pickled scikit-learn random forest
      learning_curve.csv    training-set size vs validation loss (network models)
      learning_curve.png
      training_history.csv  per member and epoch: train and validation loss

Writing goes to a hidden staging folder beside the target (``.NAME.staging-XXXX``), which
replaces the target by a rename only when everything is written, so a killed training never
leaves a half-written model that loads. ``weights.pt`` is read with ``torch.load(...,
weights_only=True)``; ``forest.pkl`` is a pickle and, like any pickle, must come from a trusted
source.

Loading (:func:`load_model_files`) checks the format name, the format version
(:data:`FORMAT_VERSION`; another version is refused with the fix), the kind, the files, and,
when the caller gives the learning grids it works on, that the model was made on the same
grids.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import cgforge
from cgforge.errors import InputError
from cgforge.fileio import check_creatable_dir, write_json, write_npz
from cgforge.grids import LearningGrids

__all__ = [
    "ARRAYS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODEL_KINDS",
    "WEIGHTS",
    "LoadedModel",
    "check_grids",
    "check_output_dir",
    "load_model_files",
    "read_manifest",
    "staged_model_dir",
    "write_model_files",
    "write_trained_model",
    "write_training_record",
]

#: Name of the model-directory format (the ``format`` field of ``model.json``).
FORMAT_NAME = "cgforge-learned-model"
#: Version of the layout and manifest; a model of another version is refused on loading.
FORMAT_VERSION = 1
MANIFEST = "model.json"
ARRAYS = "arrays.npz"
WEIGHTS = "weights.pt"
#: Kinds of model and the ``cgforge train`` command that makes each.
#: Where the mobility model shipped with cgforge lives (package data; see its MODEL_CARD.md).
SHIPPED_MOBILITY_MODEL = (
    Path(__file__).resolve().parent.parent.parent / "data" / "models" / "mobility"
)


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """``model_dir``, or the shipped mobility model when it is None (an error if this
    installation has none)."""
    if model_dir is not None:
        return Path(model_dir)
    if not (SHIPPED_MOBILITY_MODEL / MANIFEST).is_file():
        raise InputError(
            "this installation has no shipped mobility model; train one (cgforge train "
            "mobility) and give its directory as model_dir",
            parameters="model_dir",
        )
    return SHIPPED_MOBILITY_MODEL


MODEL_KINDS = {
    "mobility": "cgforge train mobility",
    "params-to-potential": "cgforge train params-to-potential",
    "pairs": "cgforge train params-to-potential (target pairs)",
    "acceleration": "cgforge train acceleration",
}


@dataclass(frozen=True)
class LoadedModel:
    """A model directory as read back: manifest, arrays and member state dicts."""

    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    members: list[dict[str, Any]]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def grids(self) -> LearningGrids:
        return LearningGrids.from_dict(self.manifest["grids"])


def check_output_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse a model output path that cannot be written (call before training): a file, a
    non-empty folder without ``overwrite``, or a non-empty folder that holds no model."""
    target = Path(out)
    if target.exists():
        if not target.is_dir():
            raise InputError(
                f"out {target} is a file; give a directory path for the model", parameters="out"
            )
        if any(target.iterdir()):
            if not overwrite:
                raise InputError(
                    f"out {target} exists and is not empty; choose a new path or pass "
                    "overwrite=True",
                    parameters=("out", "overwrite"),
                )
            if not (target / MANIFEST).is_file():
                raise InputError(
                    f"out {target} is not a cgforge model directory (no {MANIFEST}); refusing "
                    "to replace it, choose a new path",
                    parameters="out",
                )
    check_creatable_dir(target)  # its staging folder goes beside it
    return target


@contextlib.contextmanager
def staged_model_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``out`` in one rename.

    ``out`` must not exist, be empty, or (with ``overwrite``) be a previous model directory,
    which is then replaced. The staging folder must hold ``model.json`` at the end.
    """
    target = check_output_dir(out, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
        if not (staging / MANIFEST).is_file():
            raise InputError(f"model staging folder {staging} has no {MANIFEST}; nothing written")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_model_files(
    folder: Path,
    manifest: Mapping[str, Any],
    *,
    arrays: Mapping[str, np.ndarray],
    members: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Write ``arrays.npz``, ``weights.pt`` (when ``members`` are given) and, last, ``model.json``
    (with the format fields, cgforge version and creation time added) into ``folder``."""
    write_npz(folder / ARRAYS, **{k: np.asarray(v) for k, v in arrays.items()})
    files = dict(manifest.get("files", {}))
    files["arrays"] = ARRAYS
    if members is not None:
        import torch

        torch.save({"members": [dict(m) for m in members]}, folder / WEIGHTS)
        files["weights"] = WEIGHTS
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "cgforge_version": cgforge.__version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **dict(manifest),
        "files": files,
    }
    write_json(folder / MANIFEST, full)


def read_manifest(model_dir: str | Path, kind: str | Sequence[str] | None = None) -> dict[str, Any]:
    """The checked ``model.json`` of a model directory (format, version and kind)."""
    path = Path(model_dir)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise InputError(
            f"model directory {path} not found; give the output directory of a training "
            "('cgforge train')"
        )
    if not manifest_path.is_file():
        raise InputError(
            f"{path} is not a cgforge model directory (no {MANIFEST}); give the output directory "
            "of a training ('cgforge train')"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{manifest_path} is not valid JSON ({exc}); retrain the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise InputError(
            f"{manifest_path} is not a {FORMAT_NAME} manifest; give a model made by 'cgforge train'"
        )
    version = manifest.get("format_version")
    model_kind = manifest.get("kind")
    if version != FORMAT_VERSION:
        made_by = manifest.get("cgforge_version", "unknown")
        command = MODEL_KINDS.get(str(model_kind), "cgforge train")
        raise InputError(
            f"model {path} has format version {version!r} (made by cgforge {made_by}); this "
            f"cgforge {cgforge.__version__} reads version {FORMAT_VERSION}: retrain it with "
            f"'{command}' or use the cgforge that made it"
        )
    if model_kind not in MODEL_KINDS:
        raise InputError(f"model {path} has unknown kind {model_kind!r}; retrain it")
    if kind is not None:
        wanted = (kind,) if isinstance(kind, str) else tuple(kind)
        if model_kind not in wanted:
            raise InputError(
                f"model {path} is a '{model_kind}' model, not {' or '.join(map(repr, wanted))}; "
                f"make one with {MODEL_KINDS[wanted[0]]}"
            )
    if "grids" not in manifest:
        raise InputError(f"{manifest_path} has no learning grids; retrain the model")
    return manifest


def check_grids(manifest: Mapping[str, Any], grids: LearningGrids, where: str = "") -> None:
    """Refuse a model whose learning grids differ from ``grids`` (e.g. a database's)."""
    mine = LearningGrids.from_dict(manifest["grids"])
    same = all(
        a.shape == b.shape and np.allclose(a, b, rtol=0.0, atol=1e-9)
        for a, b in (
            (mine.rdf_r_nm, grids.rdf_r_nm),
            (mine.potential_r_nm, grids.potential_r_nm),
        )
    )
    if not same:
        raise InputError(
            f"the model was trained on other learning grids (rdf {_describe(mine.rdf_r_nm)}, "
            f"potential {_describe(mine.potential_r_nm)}) than {where or 'the given ones'} "
            f"(rdf {_describe(grids.rdf_r_nm)}, potential {_describe(grids.potential_r_nm)}); "
            "retrain the model on a database with these grids"
        )


def _describe(grid: np.ndarray) -> str:
    return f"{grid.size} points {grid[0]:.4g}–{grid[-1]:.4g} nm"


def load_model_files(
    model_dir: str | Path,
    *,
    kind: str | Sequence[str] | None = None,
    grids: LearningGrids | None = None,
    grids_from: str = "",
) -> LoadedModel:
    """Read and check a model directory (see the module docstring for what is checked)."""
    path = Path(model_dir)
    manifest = read_manifest(path, kind)
    if grids is not None:
        check_grids(manifest, grids, grids_from)
    files = manifest.get("files", {})
    arrays_path = path / files.get("arrays", ARRAYS)
    if not arrays_path.is_file():
        raise InputError(f"model {path} lacks {arrays_path.name}; retrain the model")
    with np.load(arrays_path, allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name]) for name in data.files}
    members: list[dict[str, Any]] = []
    if "weights" in files:
        weights_path = path / files["weights"]
        if not weights_path.is_file():
            raise InputError(f"model {path} lacks {weights_path.name}; retrain the model")
        import torch

        try:
            payload = torch.load(weights_path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError) as exc:
            raise InputError(f"cannot read {weights_path} ({exc}); retrain the model") from None
        members = list(payload.get("members", []))
    return LoadedModel(path=path.resolve(), manifest=manifest, arrays=arrays, members=members)


def write_training_record(folder: Path, report: Any) -> dict[str, str]:
    """Write ``learning_curve.csv`` / ``.png`` and ``training_history.csv`` of a
    :class:`~cgforge.methods.mobility.network.FitReport` into ``folder``; returns the names."""
    from cgforge.fileio import write_columns_csv

    files: dict[str, str] = {}
    if report.history:
        rows = np.array(report.history, dtype=np.float64)
        write_columns_csv(
            folder / "training_history.csv",
            ("member", "epoch", "train_loss", "val_loss"),
            rows.T,
        )
        files["training_history"] = "training_history.csv"
    curve = report.learning_curve
    if curve:
        names = ("fraction", "n_train", "val_loss_mean", "val_loss_std", "baseline_val_loss")
        write_columns_csv(
            folder / "learning_curve.csv", names, [[row[n] for row in curve] for n in names]
        )
        files["learning_curve"] = "learning_curve.csv"
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        n = [row["n_train"] for row in curve]
        ax.errorbar(
            n,
            [row["val_loss_mean"] for row in curve],
            yerr=[row["val_loss_std"] for row in curve],
            fmt="o-",
            label="network (mean ± sd over folds)",
        )
        ax.axhline(curve[0]["baseline_val_loss"], color="grey", ls="--", label="predict the mean")
        ax.set(
            xlabel="training records",
            ylabel="validation loss (standardised MSE)",
            yscale="log",
            title="Learning curve",
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_png(folder / "learning_curve.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        files["learning_curve_plot"] = "learning_curve.png"
    return files


def write_trained_model(
    out: str | Path,
    manifest: dict[str, Any],
    report: Any,
    *,
    arrays: Mapping[str, np.ndarray],
    members: Sequence[Mapping[str, Any]],
    overwrite: bool = False,
    extra_files: Callable[[Path], Mapping[str, str]] | None = None,
) -> None:
    """Write the model directory ``out`` of a trained ensemble in one staged step
    (:func:`staged_model_dir`): the training record of ``report``
    (:func:`write_training_record`), whatever ``extra_files`` writes into the staging folder
    (it returns the ``files`` entries of what it wrote), then ``arrays``, the ``members``'
    weights and ``manifest`` (:func:`write_model_files`). Sets ``manifest["files"]`` to the
    files written."""
    with staged_model_dir(out, overwrite=overwrite) as folder:
        files = write_training_record(folder, report)
        if extra_files is not None:
            files.update(extra_files(folder))
        manifest["files"] = files
        write_model_files(folder, manifest, arrays=arrays, members=members)


@contextlib.contextmanager
def atomic_png(path: Path) -> Iterator[Path]:
    """A temporary path for a figure that replaces ``path`` when written."""
    from cgforge.fileio import atomic_path

    with atomic_path(path) as tmp:
        yield tmp
