"""Resolving archive member names under a root directory so that nothing lands outside it.

Two rules, in the manner of a chroot:
- a member name is cleaned lexically first: a leading "/" is dropped (absolute names are
  relative to the root), "." and empty parts vanish, and a ".." that would climb above
  the root is refused (UnsafeContent), as GNU tar refuses such members;
- the directories in front of the last part are then walked one at a time with lstat; a
  symlink met on the way is followed as if the root were "/" (absolute targets restart at
  the root, ".." stops at it), so a symlink planted by an earlier member can redirect a
  later write only to somewhere else inside the root. The last part is never followed:
  the unpacker creates it with O_NOFOLLOW / O_EXCL or replaces what is there.

Resolved directories are cached by their lexical name; the unpacker calls forget()
whenever it removes something, since a cached answer may then be stale.
"""

from __future__ import annotations

import os
import stat

from imagetool.errors import LayerError, UnsafeContent

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


def clean(name: str) -> tuple[str, ...]:
    """A member name as path parts below the root; ".." above the root is refused."""
    if "\0" in name:
        raise UnsafeContent(f"tar member name {name!r} contains a NUL byte")
    split = name.split("/")
    if ".." not in split:  # the usual case: only empty and "." parts to drop
        if "" in split or "." in split:
            return tuple([part for part in split if part and part != "."])
        return tuple(split)
    parts: list[str] = []
    for part in split:
        if part == "" or part == ".":
            continue
        if part == "..":
            if not parts:
                raise UnsafeContent(f"tar member {name!r} points outside the target directory")
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


class Resolver:
    """Maps cleaned names to real paths inside `root`, creating missing parent directories on demand."""

    def __init__(self, root: str, dir_mode: int = 0o755) -> None:
        self.root = os.path.abspath(root)
        self.dir_mode = dir_mode
        self._dirs: dict[tuple[str, ...], str] = {(): self.root}

    def forget(self) -> None:
        """Drop cached answers: something under the root was removed or replaced."""
        self._dirs = {(): self.root}

    def remember(self, parts: tuple[str, ...], path: str) -> None:
        """`path` (the real path of `parts`) is a directory the caller just made."""
        self._dirs[parts] = path

    def directory(self, parts: tuple[str, ...], create: bool = True) -> str:
        """The real path of the directory named by `parts`; missing ones are made when `create`."""
        found = self._dirs.get(parts)
        if found is not None:
            return found
        # the longest cached prefix saves walking a deep tree from the top each time
        start = len(parts) - 1
        while start > 0 and parts[:start] not in self._dirs:
            start -= 1
        base = self._dirs[parts[:start]]
        resolved = self._walk(base, list(parts[start:]), parts, create)
        self._dirs[parts] = resolved
        return resolved

    def path(self, parts: tuple[str, ...], create: bool = True) -> str:
        """Where the member named by `parts` goes: its resolved parent + its own (unfollowed) name."""
        if not parts:
            return self.root
        return self.directory(parts[:-1], create) + "/" + parts[-1]

    def _walk(self, base: str, todo: list[str], parts: tuple[str, ...], create: bool) -> str:
        # `current` is a list of real directory names below the root, `todo` a stack of parts to go
        current = [] if base == self.root else base[len(self.root) + 1:].split("/")
        todo.reverse()
        links = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if current:
                    current.pop()
                continue
            candidate = self.root + "/" + "/".join(current + [part])
            try:
                st = os.lstat(candidate)
            except FileNotFoundError as err:
                if not create:
                    raise LayerError(f"{'/'.join(parts)}: no such directory in the layer") from err
                os.mkdir(candidate, self.dir_mode)
                current.append(part)
                continue
            if stat.S_ISDIR(st.st_mode):
                current.append(part)
            elif stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise UnsafeContent(f"{'/'.join(parts)}: too many levels of symbolic links")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = []
                todo.extend(reversed(target.split("/")))
            else:
                raise LayerError(f"{'/'.join(parts)}: {'/'.join(current + [part])} is not a directory")
        return self.root + "/" + "/".join(current) if current else self.root
