"""The import layering of design.md, asserted on every import the package makes.

Ranks, lowest first. A module may import its own area, any area of a lower rank, and an area of its own
rank only where SAME_RANK says so:

    0  core: errors digest media descriptor manifest reference compression gojson gotemplate govalues goduration
       memory tmpdirs userns outputs pathresolve codecache cachedir deferred (one-module areas that import one another
       freely; errors imports nothing)
    1  layer store registry runtime   (store -> layer, runtime -> store; runtime never imports registry)
    2  transports
    3  signature
    4  copy inspect pull manifest_lists sync local_images   (copy imports no concrete transport, only
       transports.base)
    5  build
    6  cli

The package's own __init__ (the lazy library API) and __main__ stand above every rank.

What counts as an import: `import` and `from ... import` anywhere (lazy ones inside functions too), relative
imports resolved against the importing module, `importlib.import_module("imagetool.x")` and
`__import__("imagetool.x")` with a literal name, and `from imagetool import NAME` where NAME is one of the
lazy library exports (counted as an import of the module defining it).
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

import imagetool

PACKAGE = Path(__file__).resolve().parent.parent / "imagetool"
#: userns: the store's user namespace (unpack, diff, removal rootless), used by layer, store and runtime alike
CORE = {"errors", "digest", "media", "descriptor", "manifest", "reference", "compression", "gojson", "gotemplate",
        "goduration", "memory", "tmpdirs", "userns", "outputs", "pgzip", "parallel_compress", "pathresolve",
        "codecache", "cachedir", "deferred", "govalues"}
RANK = {**{name: 0 for name in CORE}, "layer": 1, "store": 1, "registry": 1, "runtime": 1, "transports": 2,
        "signature": 3, "copy": 4, "inspect": 4, "pull": 4, "manifest_lists": 4, "sync": 4,
        "local_images": 4, "build": 5, "cli": 6}
#: (importer, imported) areas of one rank above core that may import each other, and why
SAME_RANK = {
    ("store", "layer"): "snapshots are unpacked layers, and diffs of upper directories",
    ("runtime", "store"): "a container's rootfs is built from the store's snapshots",
    ("inspect", "copy"): "inspect picks the platform's instance and reads the config as copy does",
    ("pull", "copy"): "pull is a copy into the local store",
    ("manifest_lists", "copy"): "adding an image to a list reads its manifest and config as copy does",
}
#: the lazy library exports of imagetool/__init__.py -> the module each is loaded from
LAZY_API = {name: module for name, (module, _attribute) in imagetool._LAZY.items()}


def _modules(package: Path = PACKAGE) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


def _absolute(module: str, level: int, name: str | None) -> str:
    """`from ..x import y` in `module` (e.g. "store.layout") -> "imagetool.x"."""
    package = ["imagetool", *module.split(".")[:-1]]  # a module's package; __init__'s is its own directory
    if level - 1 > len(package) - 1:
        raise AssertionError(f"{module}: relative import beyond the top-level package")
    base = package[:len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _literal_import(node: ast.Call) -> str | None:
    """The module a call to importlib.import_module / __import__ names with a literal string, if any."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def _imports_in(source: str, module: str, filename: str = "<module>") -> list[str]:
    """Every imagetool module or attribute `source` (the text of `module`) imports."""
    names = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "") if node.level == 0 else _absolute(module, node.level, node.module)
            names.append(base)
            for alias in node.names:
                names.append(f"{base}.{alias.name}")
                if base == "imagetool" and alias.name in LAZY_API:
                    names.append(LAZY_API[alias.name])
        elif isinstance(node, ast.Call):
            target = _literal_import(node)
            if target is not None:
                names.append(target)
    return [n for n in names if n.startswith("imagetool.")]


def _imports(path: Path, module: str) -> list[str]:
    return _imports_in(path.read_text(), module, str(path))


def _area(dotted: str) -> str:
    return dotted.split(".")[0]


def _layer_violations(module: str, targets: Iterable[str]) -> list[str]:
    area = _area(module)
    if area not in RANK:
        return []
    bad = []
    for target in targets:
        target_area = target.split(".")[1]
        if target_area not in RANK or target_area == area:
            continue
        rank, target_rank = RANK[area], RANK[target_area]
        if target_rank > rank:
            bad.append(f"{module} imports {target}: {target_area} is above {area}")
        elif target_rank == rank and rank > 0 and (area, target_area) not in SAME_RANK:
            bad.append(f"{module} imports {target}: {area} -> {target_area} is not in SAME_RANK")
    return bad


def _rule_violations(module: str, targets: list[str]) -> list[str]:
    bad = []
    if module == "errors" and targets:
        bad.append("errors.py must import nothing from imagetool")
    if module.startswith("runtime.") and any(t.startswith("imagetool.registry") for t in targets):
        bad.append(f"{module}: runtime must not import registry")
    if module.startswith("copy") and any(t.startswith("imagetool.transports") and
                                         not t.startswith("imagetool.transports.base") for t in targets):
        bad.append(f"{module}: copy must import no concrete transport")
    return bad


def _violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for module, path in _modules(package):
        targets = _imports(path, module)
        bad += _layer_violations(module, targets) + _rule_violations(module, targets)
    return bad


def test_every_area_has_a_rank() -> None:
    for module, _ in _modules():
        area = _area(module)
        assert area in RANK or area in ("__init__", "__main__"), f"{module} is in no layer of design.md"


def test_imports_point_down_the_layers() -> None:
    bad = []
    for module, path in _modules():
        bad += _layer_violations(module, _imports(path, module))
    assert not bad, "\n".join(bad)


def test_specific_rules() -> None:
    bad = []
    for module, path in _modules():
        bad += _rule_violations(module, _imports(path, module))
    assert not bad, "\n".join(bad)


def test_same_rank_allowances_are_used() -> None:
    """An allowance nothing uses any more is removed, so the list says what the code does."""
    used = set()
    for module, path in _modules():
        for target in _imports(path, module):
            used.add((_area(module), target.split(".")[1]))
    assert not set(SAME_RANK) - used, f"unused SAME_RANK entries: {sorted(set(SAME_RANK) - used)}"


def test_lazy_api_names_real_modules() -> None:
    """The modules the checker charges a lazy export to are files of the package."""
    for name, module in LAZY_API.items():
        path = PACKAGE.parent / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), (name, module)


def test_checker_sees_every_kind_of_import() -> None:
    """Each way of importing upward is caught (so the tests above can fail)."""
    planted = {
        "absolute, lazy": "def f():\n    from imagetool.cli import main\n",
        "plain import": "import imagetool.build.stages\n",
        "relative": "from ..cli import main\n",
        "relative, same package": "from . import snapshots\nfrom .. import build\n",
        "importlib": "import importlib\nm = importlib.import_module('imagetool.copy.single')\n",
        "from importlib": "from importlib import import_module\nm = import_module('imagetool.signature')\n",
        "__import__": "m = __import__('imagetool.transports.oci')\n",
        "lazy library export": "from imagetool import copy_image\n",
    }
    for kind, source in planted.items():
        targets = _imports_in(source, "store.planted")
        assert _layer_violations("store.planted", targets), f"{kind}: {targets} passed"
    # within rank 1: store -> layer is allowed, registry -> layer and registry -> store are not
    assert not _layer_violations("store.planted", _imports_in("from ..layer import unpack\n", "store.planted"))
    assert _layer_violations("registry.planted", _imports_in("from ..layer import unpack\n", "registry.planted"))
    assert _layer_violations("registry.planted", _imports_in("from imagetool.store import x\n", "registry.planted"))
    # relative imports resolve against the module's package, an __init__'s being its own directory
    assert _imports_in("from . import x\n", "store.__init__") == ["imagetool.store", "imagetool.store.x"]
    assert _imports_in("from .x import y\n", "store.layout") == ["imagetool.store.x", "imagetool.store.x.y"]
    assert _imports_in("from ..digest import Digest\n", "store.layout") == \
        ["imagetool.digest", "imagetool.digest.Digest"]
    assert _imports_in("from . import media\n", "digest") == ["imagetool.media"]


def test_checker_fails_on_a_planted_upward_import(tmp_path: Path) -> None:
    """A copy of the package passes; the same copy with one relative upward import in store/ fails."""
    copy = tmp_path / "imagetool"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _violations(copy) == []
    layout = copy / "store" / "layout.py"
    layout.write_text(layout.read_text() + "\n\ndef _planted() -> None:\n    from ..cli import main  # noqa\n")
    assert _violations(copy) == ["store.layout imports imagetool.cli: cli is above store",
                                 "store.layout imports imagetool.cli.main: cli is above store"]
