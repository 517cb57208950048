"""A read-only view of an image's merged filesystem over its layer directories, without mounting.

Layer directories are in overlay form (as snapshots and build upperdirs keep them): a
0/0 character device is a whiteout, a directory with trusted.overlay.opaque=y (or the
user.overlay.opaque xattr, rootless) hides everything below it. Paths resolve like in
a chroot: symlinks are followed inside the root, never out of it. COPY uses this to see
what its destination already is and to read /etc/passwd for --chown names.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from imagetool import pathresolve
from imagetool.errors import BuildError, UnsafeContent

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_MAX_LINKS = pathresolve.SECUREJOIN_MAX_LINKS


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    for name in _OPAQUE:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


class RootView:
    """`layers` top first: the writable upperdir (if any), then the parent's layers down to the base."""

    def __init__(self, layers: list[Path]) -> None:
        self.layers = [Path(p) for p in layers]

    def locate(self, path: str) -> tuple[Path, os.stat_result] | None:
        """Which layer holds the visible `path` (no symlink resolution), or None if it does not exist."""
        parts = [p for p in path.split("/") if p]
        for layer in self.layers:
            cur = layer
            hidden = False
            for n, part in enumerate(parts):
                cur = cur / part
                try:
                    st = os.lstat(cur)
                except (FileNotFoundError, NotADirectoryError):
                    break
                if is_whiteout(st):
                    return None
                if n == len(parts) - 1:
                    return cur, st
                if not stat.S_ISDIR(st.st_mode):
                    break
                if is_opaque(cur):
                    hidden = True
            else:
                if not parts:
                    return layer, os.lstat(layer)
            if hidden:
                return None
        return None

    def lstat(self, path: str) -> os.stat_result | None:
        found = self.locate(path)
        return found[1] if found else None

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` with symlinks resolved inside the root; components that do not exist are kept as given."""
        def readlink(parts: tuple[str, ...]) -> str | None:
            found = self.locate("/" + "/".join(parts))
            return os.readlink(found[0]) if found and stat.S_ISLNK(found[1].st_mode) else None

        try:
            done = pathresolve.resolve(readlink, posixpath.normpath("/" + path), follow_last=follow_last,
                                       max_links=_MAX_LINKS)
        except pathresolve.SymlinkLoop as err:
            raise UnsafeContent(f"{path}: too many levels of symbolic links") from err
        return "/" + "/".join(done)

    def listdir(self, path: str) -> list[str]:
        """Names in the merged directory `path` (already resolved): union over layers, whiteouts removed."""
        parts = [p for p in path.split("/") if p]
        names: set[str] = set()
        gone: set[str] = set()
        for layer in self.layers:
            d, last = layer, False
            for part in parts:  # an opaque or whited-out ancestor hides the layers below
                d = d / part
                try:
                    st = os.lstat(d)
                except (FileNotFoundError, NotADirectoryError):
                    break
                if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    return sorted(names)
                last = last or is_opaque(d)
            if not d.is_dir() or d.is_symlink():
                if last:
                    break
                continue
            for name in os.listdir(d):
                if name in names or name in gone:
                    continue
                if is_whiteout(os.lstat(d / name)):
                    gone.add(name)
                else:
                    names.add(name)
            if last or is_opaque(d):
                break
        return sorted(names)

    def read(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """A small file's content (passwd, group), symlinks followed; None when absent or not a file."""
        found = self.locate(self.resolve(path))
        if not found or not stat.S_ISREG(found[1].st_mode):
            return None
        with open(found[0], "rb") as f:
            return f.read(limit)

    def is_dir(self, path: str) -> bool:
        st = self.lstat(self.resolve(path))
        return st is not None and stat.S_ISDIR(st.st_mode)


def _lookup(db: bytes | None, name: str) -> list[str] | None:
    for line in (db or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if fields and fields[0] == name:
            return fields
    return None


def resolve_owner(view: RootView, spec: str) -> tuple[int, int]:
    """--chown USER[:GROUP] -> (uid, gid): numbers as given, names from the image's /etc/passwd and /etc/group.

    A numeric user without a group gets the same number as gid; a named one its primary group.
    """
    user, sep, group = spec.partition(":")
    if user.isdigit():
        uid = int(user)
    else:
        entry = _lookup(view.read("/etc/passwd"), user)
        if entry is None or len(entry) < 4:
            raise BuildError(f"--chown: no user {user!r} in the image's /etc/passwd")
        uid = int(entry[2])
        if not sep or not group:
            return uid, int(entry[3])
    if not sep or not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    gentry = _lookup(view.read("/etc/group"), group)
    if gentry is None or len(gentry) < 3:
        raise BuildError(f"--chown: no group {group!r} in the image's /etc/group")
    return uid, int(gentry[2])
