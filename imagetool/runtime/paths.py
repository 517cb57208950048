"""Join a container path onto a host root as the container would see it: symlinks resolve inside the root.

Used before pivot_root, when an image symlink such as /etc/hosts -> /etc/shadow must
not reach the host's files. Standard library and imagetool.pathresolve only (the helper imports it).
"""

from __future__ import annotations

import errno
import os

from imagetool import pathresolve

_MAX_LINKS = pathresolve.SECUREJOIN_MAX_LINKS


def secure_join(root: str, path: str) -> str:
    """`root`/`path` with every symlink in `path` resolved relative to `root`; never outside it.

    Components that do not exist yet are appended as they are (the caller creates them).
    """
    root = os.path.abspath(root)
    try:
        resolved = pathresolve.resolve(pathresolve.disk_readlink(root), path, max_links=_MAX_LINKS)
    except pathresolve.SymlinkLoop as err:
        raise OSError(errno.ELOOP, f"too many levels of symbolic links in {path}") from err
    return os.path.join(root, *resolved)


def read_in_root(root: str, path: str) -> bytes | None:
    """The bytes of a regular file at `path` inside `root`, or None when it is missing."""
    try:
        with open(secure_join(root, path), "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
