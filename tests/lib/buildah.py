"""buildah 1.28 as the reference builder: builds in a private store, trees and configs to compare with."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from tests.lib.cli import tool

#: what buildah adds that imagetool does not
BUILDAH_LABEL = "io.buildah.version"


def fs_tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (type, mode, uid, gid, link target, content) for everything under `root`."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            mode = st.st_mode
            kind = "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "f" if stat.S_ISREG(mode) else "o"
            out["/" + str(path.relative_to(root))] = (
                kind, stat.S_IMODE(mode) if kind != "l" else 0o777, st.st_uid, st.st_gid,
                os.readlink(path) if kind == "l" else "", path.read_bytes() if kind == "f" else b"")
    return out


class Buildah:
    def __init__(self, work: Path, driver: str = "vfs") -> None:
        self.argv = ["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                     "--storage-driver", driver]

    def bud(self, context: Path, dockerfile: Path, tag: str, *extra: str) -> None:
        tool([*self.argv, "bud", "-q", *extra, "-f", str(dockerfile), "-t", tag, str(context)], timeout=300)

    def tree(self, tag: str) -> dict[str, tuple[Any, ...]]:
        tool([*self.argv, "from", "--name", "tree-of-" + tag, tag], timeout=60)
        try:
            return fs_tree(Path(tool([*self.argv, "mount", "tree-of-" + tag], timeout=60).stdout.strip()))
        finally:
            tool([*self.argv, "rm", "tree-of-" + tag], timeout=60)

    def image(self, tag: str) -> dict[str, Any]:
        """`buildah inspect --type image`: OCIv1 and Docker configs, manifests."""
        return json.loads(tool([*self.argv, "inspect", "--type", "image", tag], timeout=60).stdout)
