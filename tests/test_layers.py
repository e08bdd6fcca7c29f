"""The package's layers and the direction of its imports, read from every module's source.

environment, modules < data, decoding < models < criterions < tasks < hub, evaluation, launch < interop <
demos < cli (the root ``__init__`` and ``__main__`` sit above everything). A module may import
from its own layer or a lower one, never a higher one; nothing below the hub imports the
package root (importing it registers everything, which is the hub's and the commands' job).
"""

import ast
import os

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "d2v_fairseq")

LAYERS = {
    "environment": 0, "modules": 0, "locks": 0,
    "data": 1, "decoding": 1,
    "models": 2,
    "criterions": 3,
    "tasks": 4,
    "hub": 5, "evaluation": 5, "launch": 5, "checkpoints": 5, "training_rules": 5, "inference": 5, "transcription": 5,
    "slurm": 5, "features": 5, "probe": 5,
    "interop": 6,
    "demos": 7,
    "cli": 8,
    "": 9, "__main__": 9,  # the package root
}


def layer_of(module: str) -> str:
    """'d2v_fairseq.models.base' -> 'models'; the package itself -> ''."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def package_modules():
    """(dotted name, path) of every module of the package."""
    for root, _, files in os.walk(PACKAGE_DIR):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                yield rel[: -len(".__init__")] if rel.endswith(".__init__") else rel, path


def imported_modules(module: str, path: str):
    """(line, absolute module name) of every import of the package in ``path``, function-level
    imports included; ``from . import x`` counts as importing ``package.x``."""
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "d2v_fairseq":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "d2v_fairseq":
                    yield node.lineno, node.module
                continue
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                yield node.lineno, target
            else:  # from . import a, b: modules of that package, or names of the package root
                for alias in node.names:
                    is_layer = target == "d2v_fairseq" and alias.name in LAYERS
                    yield node.lineno, f"{target}.{alias.name}" if is_layer or target != "d2v_fairseq" else target


def test_every_top_level_module_has_a_layer():
    unknown = {layer_of(m) for m, _ in package_modules()} - set(LAYERS) - {"configs"}
    assert not unknown, f"give these a layer in tests/test_layers.py: {sorted(unknown)}"


@pytest.mark.parametrize("module,path", list(package_modules()), ids=lambda v: v if "." in str(v) else None)
def test_imports_point_down(module, path):
    mine = LAYERS[layer_of(module)]
    upward = []
    for line, target in imported_modules(module, path):
        theirs = LAYERS.get(layer_of(target))
        if theirs is None:
            continue
        if theirs > mine:
            upward.append(f"{path}:{line}: {module} imports {target}")
        if target == "d2v_fairseq" and mine < LAYERS["hub"]:
            upward.append(f"{path}:{line}: {module} imports the package root")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    # the check itself can fail: a models module importing the hub is reported
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from ..hub import load_checkpoint\n")
    imports = list(imported_modules("d2v_fairseq.models.bad", str(path)))
    assert imports == [(2, "d2v_fairseq.hub")]
    assert LAYERS[layer_of(imports[0][1])] > LAYERS["models"]
