"""cgforge's layers import downward only, and optional heavy dependencies stay optional.

Layers, lowest first (a module may import from its own layer or lower ones, at module level,
under ``TYPE_CHECKING`` and inside functions alike):

0. core data: units, trajectory, geometry, fileio, errors, mapping, provenance, rundir,
   runsummary, packing, grids, potentials (with potentials.neural), molecules
1. engines
2. observables (with ``cgforge.liquid_analysis``, the one-bead analysis built from them)
3. methods (with ``cgforge.presets``, the run presets built on IBIConfig)
4. store: database
5. workflows, report, api
6. cli
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "cgforge"

#: Layer of each top-level name under ``cgforge`` (module or subpackage).
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        (
            "units",
            "trajectory",
            "geometry",
            "fileio",
            "errors",
            "mapping",
            "provenance",
            "rundir",
            "runsummary",
            "packing",
            "grids",
            "potentials",
            "molecules",
        ),
        0,
    ),
    "engines": 1,
    "observables": 2,
    # The one-bead analysis (RDF, MSD, D, density of a CG trajectory) composes observables and
    # is used by workflows only: it belongs to the observables layer.
    "liquid_analysis": 2,
    "methods": 3,
    # The run presets compose method settings (IBIConfig); the store builds its stage settings
    # from them and the workflows run them.
    "presets": 3,
    "database": 4,
    "workflows": 5,
    "report": 5,
    "api": 5,
    "cli": 6,
}
LAYER_NAMES = ("core", "engines", "observables", "methods", "database", "workflows", "cli")
#: Modules whose layer differs from their package's (none at present).
MODULE_LAYERS: dict[str, int] = {}
#: Upward edges still allowed (source module, imported module), each to be removed; none at
#: present: the database layer keeps the store, the record specs, the plan and the lock, and
#: the stage runners and the generation driver that simulate its records are workflows
#: (cgforge.workflows.db_stages, cgforge.workflows.db_generate).
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def layer(module: str) -> int | None:
    """Layer of ``module``; None for the package root ``cgforge`` (version metadata only)."""
    for name in sorted(MODULE_LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return MODULE_LAYERS[name]
    parts = module.split(".")
    if len(parts) < 2:
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: add cgforge.{parts[1]} to the layer map of this test")
    return LAYERS[parts[1]]


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every cgforge module imported anywhere in ``path``: (module, line)."""
    module = module_name(path)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from cgforge.x import y`` may name a submodule y: count the deeper one.
            targets = [
                f"{stem}.{alias.name}"
                if (PACKAGE.parent / f"{stem}.{alias.name}".replace(".", "/")).is_dir()
                or (PACKAGE.parent / (f"{stem}.{alias.name}".replace(".", "/") + ".py")).is_file()
                else stem
                for alias in node.names
            ]
        else:
            continue
        found += [(t, node.lineno) for t in targets if t == "cgforge" or t.startswith("cgforge.")]
    return found


def test_imports_go_to_the_same_or_a_lower_layer() -> None:
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        here = layer(source)
        if here is None:
            continue
        for target, line in imported_modules(path):
            there = layer(target)
            if there is not None and there > here and (source, target) not in ALLOWED:
                offending.append(
                    f"{source} ({LAYER_NAMES[here]}) -> {target} ({LAYER_NAMES[there]}), "
                    f"{path.relative_to(SRC)}:{line}"
                )
    assert not offending, "imports to a higher layer:\n  " + "\n  ".join(offending)


def test_the_allow_list_holds_only_edges_that_exist() -> None:
    edges = {
        (module_name(path), target)
        for path in PACKAGE.rglob("*.py")
        for target, _ in imported_modules(path)
    }
    assert edges >= ALLOWED, f"allowed edges that are gone; remove them: {sorted(ALLOWED - edges)}"


def test_the_layer_map_knows_every_module() -> None:
    for module in all_modules():
        layer(module)  # raises for a top-level name missing from LAYERS


# ---------------------------------------------------------------------- optional dependencies
_PROBE = textwrap.dedent(
    """
    import importlib, json, sys

    blocked = set(sys.argv[1].split(","))

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"{name} is blocked for this test", name=name)
            return None

    sys.meta_path.insert(0, Block())
    failed = {}
    for module in json.loads(sys.argv[2]):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            failed[module] = str(exc)
    print(json.dumps(failed))
    """
)

#: Modules that may fail to import without each optional dependency, and why.
NEEDS: dict[str, set[str]] = {
    # OPLS-AA typing and 3D structures of the molecules come from RDKit (the package
    # cgforge.molecules imports their names on first use).
    "rdkit": {"cgforge.molecules.build", "cgforge.molecules.opls"},
    # Torch energy models and the MD engine that integrates them are torch code throughout.
    "torch": {
        "cgforge.potentials.neural.base",
        "cgforge.potentials.neural.neighbors",
        "cgforge.potentials.neural.pair",
        "cgforge.engines.torch_md",
        "cgforge.methods.gnn",
        "cgforge.methods.gnn.hipnn",
        "cgforge.methods.gnn.prior",
        "cgforge.methods.gnn.schnet",
        "cgforge.methods.gnn.train",
        # MD of a trained torch model: imports the model loader at module level.
        "cgforge.workflows.gnn_md",
        # Training in a run directory (checkpoints with torch.save) and studies built on it.
        "cgforge.workflows.gnn_study",
        "cgforge.workflows.gnn_train",
    },
    # Dask is imported only when a distributed generation runs.
    "dask": set(),
}
BLOCKS = {"rdkit": "rdkit", "torch": "torch", "dask": "dask,distributed"}


@pytest.mark.parametrize("package", sorted(NEEDS))
def test_only_modules_that_need_an_optional_package_fail_without_it(package: str) -> None:
    modules = all_modules()
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, BLOCKS[package], json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failed: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    unexpected = {m: why for m, why in failed.items() if m not in NEEDS[package]}
    assert not unexpected, f"modules that fail to import without {package}:\n" + "\n".join(
        f"  {m}: {why}" for m, why in sorted(unexpected.items())
    )
    assert set(failed) == NEEDS[package], (
        f"these modules import without {package}; remove them from NEEDS: "
        f"{sorted(NEEDS[package] - set(failed))}"
    )


def test_mobility_methods_import_without_rdkit() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "rdkit", json.dumps(["cgforge.methods.mobility"])],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
