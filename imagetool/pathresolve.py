"""Resolving a path under a root as a chroot would: the one implementation every caller shares.

The rules, those of the kernel's path walk with the root taken as "/":
- "" and "." parts vanish; ".." drops the last resolved part and stops at the root;
- a symlink met on the way is replaced by its target: an absolute target restarts at the
  root, a relative one continues from the link's directory (so "..", in a target too,
  never climbs above the root);
- more than `max_links` symlinks in one walk is an error (SymlinkLoop, ELOOP), as a loop
  would otherwise never end;
- the last part is followed only when `follow_last` is set (lstat vs stat).

What a part *is* comes from a callback, `readlink(parts) -> target | None`, given the
resolved parts (no symlink among them) up to and including the one asked about: the link's
target when that names a symlink, None for anything else. A directory on disk answers with
os.readlink; the build's layered root view answers from its stack of layers; a caller may
also raise from the callback (a missing part that must exist) or act on it (make it).

Standard library only, and none that imports typing or re: the runtime helper imports it
(through runtime/paths.py) in its small start-up.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    Readlink = Callable[[tuple[str, ...]], "str | None"]

#: the kernel's limit (ELOOP after 40 links in one walk)
KERNEL_MAX_LINKS = 40
#: runc's and filepath-securejoin's limit
SECUREJOIN_MAX_LINKS = 255


class SymlinkLoop(OSError):
    """More symlinks than the limit in one walk: an OSError with errno ELOOP, like the kernel's."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, os.strerror(errno.ELOOP), path)


def split(path: str) -> list[str]:
    """`path` as parts, "" and "." dropped ("/a//./b/" -> ["a", "b"]); ".." is kept for resolve()."""
    return [part for part in path.split("/") if part and part != "."]


def resolve(readlink: Readlink, path: str | Iterable[str], *, follow_last: bool = True,
            max_links: int = SECUREJOIN_MAX_LINKS, start: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The parts of `path` under the root with every symlink resolved inside it (the last only if `follow_last`).

    `path` is a string ("/" separated, a leading "/" meaning the root) or its parts.
    `start` is a prefix already resolved (no symlink in it) that the walk continues from.
    """
    todo = split(path) if isinstance(path, str) else [part for part in path if part and part != "."]
    name = path if isinstance(path, str) else "/".join(todo)
    todo.reverse()  # a stack: the next part on top
    done = list(start)
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        done.append(part)
        if not todo and not follow_last:
            break
        target = readlink(tuple(done))
        if target is None:
            continue
        links += 1
        if links > max_links:
            raise SymlinkLoop(name)
        done.pop()
        if target.startswith("/"):
            done = []
        todo.extend(reversed(split(target)))
    return tuple(done)


def disk_readlink(root: str) -> Readlink:
    """The callback for a real directory `root`: os.readlink of each part, None when it is no symlink or missing."""
    def readlink(parts: tuple[str, ...]) -> str | None:
        try:
            return os.readlink(root + "/" + "/".join(parts))
        except OSError:  # not a link (EINVAL), missing (ENOENT), below a file (ENOTDIR)
            return None
    return readlink
