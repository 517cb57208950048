"""Join a container path onto a host root as the container would see it: symlinks resolve inside the root.

Used before pivot_root, when an image symlink such as /etc/hosts -> /etc/shadow must
not reach the host's files. Standard library only (the helper imports it).
"""

from __future__ import annotations

import os

_MAX_LINKS = 255


def secure_join(root: str, path: str) -> str:
    """`root`/`path` with every symlink in `path` resolved relative to `root`; never outside it.

    Components that do not exist yet are appended as they are (the caller creates them).
    """
    root = os.path.abspath(root)
    pending = [p for p in path.split("/") if p]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(40, f"too many levels of symbolic links in {path}")
        if target.startswith("/"):
            resolved = []
        more = [p for p in target.split("/") if p]
        pending.extend(reversed(more))
    return os.path.join(root, *resolved)


def read_in_root(root: str, path: str) -> bytes | None:
    """The bytes of a regular file at `path` inside `root`, or None when it is missing."""
    try:
        with open(secure_join(root, path), "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
