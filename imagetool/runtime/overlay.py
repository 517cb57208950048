"""Overlay root filesystems: the helper's JSON for them, host-side mounts (runc), and tidying an upperdir.

The embedded executor mounts the overlay inside its own mount namespace (so it goes
away with the container); runc needs it mounted on the host first, and unmounted after.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from imagetool.errors import ContainerError

OPAQUE_XATTR = "trusted.overlay.opaque"


def describe(lowers: list[Path], upper: Path | None, work: Path | None) -> dict[str, object]:
    """The overlay section the helper reads: lowerdirs top first, upperdir and workdir."""
    if not lowers:
        raise ContainerError("an overlay root filesystem needs at least one lower directory")
    for path in lowers:
        if not path.is_dir():
            raise ContainerError(f"layer directory {path} is missing")
    return {"lower": [str(p.resolve()) for p in lowers],
            "upper": str(upper.resolve()) if upper else None, "work": str(work.resolve()) if work else None}


def mount_on_host(target: Path, lowers: list[Path], upper: Path | None, work: Path | None,
                  volatile: bool = True) -> None:
    from imagetool.runtime import linux
    from imagetool.runtime.rootfs import mount_overlay

    d = describe(lowers, upper, work)
    try:  # nodev as in the embedded executor: no node made in the container opens a host device
        mount_overlay(str(target), d["lower"], d["upper"], d["work"], linux.MS_NODEV,  # type: ignore[arg-type]
                      volatile=volatile)
    except OSError as err:
        raise ContainerError(f"mounting the root filesystem: {err}") from err


def unmount_on_host(target: Path) -> None:
    from imagetool.runtime import linux  # ctypes: only the runc path and build tidying unmount on the host

    try:
        linux.umount(str(target), linux.MNT_DETACH)
    except OSError:
        pass


def workdir_for(upper: Path) -> Path:
    """Overlay's workdir: beside the upperdir (it must be on the same filesystem), emptied."""
    work = upper.with_name(f".{upper.name}.work")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    return work


def _in_lowers(lowers: list[Path], rel: str) -> bool:
    return any(os.path.lexists(low / rel) for low in lowers)


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def tidy_mountpoints(upper: Path, lowers: list[Path], targets: list[str]) -> None:
    """Remove from the upperdir the empty files and directories made only to mount over.

    A build layer must not gain /etc/hosts or /proc just because RUN needed a mountpoint.
    """
    for target in targets:
        rel = target.strip("/")
        if not rel:
            continue
        path = upper / rel
        if os.path.lexists(path) and not _in_lowers(lowers, rel):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                elif path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                continue  # not empty: the command put something there
        parent = os.path.dirname(rel)
        while parent:
            p = upper / parent
            try:
                if p.is_symlink() or not p.is_dir() or any(p.iterdir()) or _is_opaque(p):
                    break
                if _in_lowers(lowers, parent) and not _same_meta(p, lowers, parent):
                    break
                p.rmdir()
            except OSError:
                break
            parent = os.path.dirname(parent)


def _same_meta(path: Path, lowers: list[Path], rel: str) -> bool:
    """Whether a copied-up directory still has the mode and owner of the one below it."""
    for low in lowers:
        below = low / rel
        if os.path.lexists(below):
            a, b = path.lstat(), below.lstat()
            return (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)
    return False
