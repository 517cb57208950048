"""Root filesystem trees on disk, and the real umoci/runc to unpack and run what imagetool writes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lib.cli import tool


def write_tree(root: str | Path, files: Mapping[str, bytes | str | None], mode: int = 0o755) -> Path:
    """Materialise a tests.lib.images-style file map: bytes = file, '->x' = symlink, None = directory."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, content in sorted(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            os.chmod(path, mode)
    return root


def umoci_unpack(layout: str | Path, name: str, bundle: str | Path) -> Path:
    """`umoci unpack` an image of an OCI layout into a runtime bundle; returns the bundle."""
    tool(["umoci", "unpack", "--image", f"{layout}:{name}", str(bundle)], timeout=120)
    return Path(bundle)


def runc_run(bundle: str | Path, args: Sequence[str] | None = None, timeout: float = 60) -> str:
    """Run the bundle's process (or `args`) under the real runc without a terminal; returns stdout."""
    bundle = Path(bundle)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    if args is not None:
        config["process"]["args"] = list(args)
    config_path.write_text(json.dumps(config))
    state = bundle.parent / f"runc-state-{uuid.uuid4().hex[:8]}"
    proc = tool(["runc", "--root", str(state), "run", f"it-{uuid.uuid4().hex[:12]}"], timeout=timeout,
                cwd=str(bundle), stdin=subprocess.DEVNULL)
    return proc.stdout
