"""The two spellings of a deletion: OCI layer whiteouts and overlayfs whiteouts.

OCI (and Docker, after AUFS): an empty file `.wh.NAME` removes NAME of the layers below;
`.wh..wh..opq` in a directory hides everything the layers below have in it.
overlayfs: a 0/0 character device NAME removes NAME; the xattr `trusted.overlay.opaque=y`
(`user.overlay.opaque` when mounted with userxattr, i.e. rootless) makes a directory opaque.
Snapshots store the overlay spelling, so they can be overlay lowerdirs as they are; layer
diffs turn it back into the OCI spelling.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from imagetool import userns

PREFIX = ".wh."
META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OPAQUE_XATTR = "user.overlay.opaque"
#: xattrs that are overlayfs's own bookkeeping: never taken from a layer, never put into one
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def opaque_xattr() -> str:
    """The opaque-marker xattr this process can set: trusted.* needs CAP_SYS_ADMIN in the initial namespace."""
    return OPAQUE_XATTR if userns.privileged() else USER_OPAQUE_XATTR


def is_overlay_xattr(name: str) -> bool:
    return name.startswith(OVERLAY_XATTR_PREFIXES)


def whiteout_target(base: str) -> str | None:
    """For a `.wh.NAME` base name, NAME; None for names that are not whiteouts (or are meta files)."""
    if not base.startswith(PREFIX) or base.startswith(META_PREFIX):
        return None
    return base[len(PREFIX):]


def make_whiteout(path: str) -> None:
    """An overlay whiteout (0/0 char device) at `path`."""
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(0, 0))


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def mark_opaque(directory: str) -> None:
    os.setxattr(directory, opaque_xattr(), b"y", follow_symlinks=False)


def is_opaque(directory: str) -> bool:
    for name in (OPAQUE_XATTR, USER_OPAQUE_XATTR):
        try:
            if os.getxattr(directory, name, follow_symlinks=False) == b"y":
                return True
        except OSError as err:
            if err.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def remove_any(path: str) -> bool:
    """Remove whatever is at `path` (a directory with its contents); False if nothing was there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    return True


def clear_directory(directory: str, keep: set[str]) -> None:
    """Apply an opaque marker to a plain tree: remove every child not in `keep` (this layer's own)."""
    with os.scandir(directory) as it:
        names = [e.name for e in it]
    for name in names:
        if name not in keep:
            remove_any(directory + "/" + name)
