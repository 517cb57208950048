"""The import layering of design.md, asserted on every import statement (lazy ones included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imagetool"
#: userns: the store's user namespace (unpack, diff, removal rootless), used by layer, store and runtime alike
CORE = {"errors", "digest", "media", "descriptor", "manifest", "reference", "compression", "gojson", "gotemplate",
        "memory", "tmpdirs", "userns", "outputs", "pgzip", "parallel_compress"}
RANK = {**{name: 0 for name in CORE}, "layer": 1, "store": 1, "registry": 1, "runtime": 1, "transports": 2,
        "signature": 3, "copy": 4, "inspect": 4, "pull": 4, "manifest_lists": 4, "build": 5, "cli": 6}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return [n for n in names if n.startswith("imagetool.")]


def _area(dotted: str) -> str:
    return dotted.split(".")[0]


def test_every_area_has_a_rank() -> None:
    for module, _ in _modules():
        area = _area(module)
        assert area in RANK or area in ("__init__", "__main__"), f"{module} is in no layer of design.md"


def test_imports_point_down_the_layers() -> None:
    bad = []
    for module, path in _modules():
        area = _area(module)
        if area not in RANK:
            continue
        for target in _imports(path):
            target_area = target.split(".")[1]
            if target_area in RANK and RANK[target_area] > RANK[area]:
                bad.append(f"{module} imports {target}")
    assert not bad, "\n".join(bad)


def test_specific_rules() -> None:
    bad = []
    for module, path in _modules():
        targets = _imports(path)
        if module == "errors" and targets:
            bad.append("errors.py must import nothing from imagetool")
        if module.startswith("runtime.") and any(t.startswith("imagetool.registry") for t in targets):
            bad.append(f"{module}: runtime must not import registry")
        if module.startswith("copy") and any(t.startswith("imagetool.transports") and
                                             not t.startswith("imagetool.transports.base") for t in targets):
            bad.append(f"{module}: copy must import no concrete transport")
    assert not bad, "\n".join(bad)


def test_checker_sees_violations(tmp_path: Path) -> None:
    """The checker itself must catch an upward import (so the tests above can fail)."""
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from imagetool.cli import main\n")
    assert _imports(sample) == ["imagetool.cli", "imagetool.cli.main"]
