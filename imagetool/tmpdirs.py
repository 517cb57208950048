"""Where temporary files go, so that no other user can make, read or swap them first.

--tmpdir and $TMPDIR always win (the user chose them). Otherwise root keeps the system's
default (tempfile's /tmp, /var/tmp for big copies: random names made with O_EXCL, mode 0700
or 0600), and an unprivileged user gets directories of its own, as podman keeps them:
small, short-lived files (container bundles, the CA bundle, GnuPG homes) under
$XDG_RUNTIME_DIR/imagetool, a tmpfs private to the user; big ones (build upperdirs, archive
spools) under the store's tmp/ directory, beside the data they become. Nothing of an
unprivileged user's lands in a shared directory such as /tmp.
"""

from __future__ import annotations

import os
from pathlib import Path

SUBDIR = "imagetool"


def rootless() -> bool:
    return os.geteuid() != 0


def private_dir(path: Path) -> Path | None:
    """`path` made (0700) if needed; None unless it ends up a real directory this user owns, closed to others."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
        return None
    if st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            return None
    return path


def user_runtime_dir() -> Path | None:
    """$XDG_RUNTIME_DIR/imagetool for an unprivileged user (made 0700), or None (root, unset, unusable)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not rootless() or not base or not os.path.isabs(base):
        return None
    try:
        st = os.stat(base)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:  # the spec's rules for a runtime dir
        return None
    return private_dir(Path(base) / SUBDIR)


def _chosen(explicit: str | None) -> str | None:
    return explicit or os.environ.get("TMPDIR") or None


def small_temp_dir(explicit: str | None = None, fallback: Path | None = None) -> str | None:
    """A directory for small temporary files; None means the system default (root only, or no choice left).

    `fallback` (a directory of the caller's own, such as the container's) serves when an
    unprivileged user has no $XDG_RUNTIME_DIR.
    """
    chosen = _chosen(explicit)
    if chosen or not rootless():
        return chosen
    found = user_runtime_dir() or fallback
    return str(found) if found is not None else None


def big_temp_dir(explicit: str | None, store_root: Path | str, default: str | None = None) -> str | None:
    """A directory for big temporary files: the store's tmp/ for an unprivileged user, else `default`."""
    chosen = _chosen(explicit)
    if chosen or not rootless():
        return chosen or default
    found = private_dir(Path(store_root) / "tmp")
    return str(found) if found is not None else default


#: chattr's T flag (FS_TOPDIR_FL) and the ioctls that read and set a file's flags
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def spread_children(path: str | Path) -> bool:
    """Mark `path` as the top of unrelated trees (chattr +T): ext4 then places each directory made in it
    in a block group of its own choosing, with the files created below, rather than beside `path`.

    Build upperdirs want this: they sit under a busy temporary directory, and on an ext4 without a
    journal each new inode scans past every inode deleted there in the last seconds to minutes
    (ialloc.c's recently_deleted), which made creating a COPY's 2,000 files take 0.3-1.5 s instead of
    30 ms. A hint only: False where the file system has no such flag or `path` is not ours to mark.
    """
    import fcntl
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
