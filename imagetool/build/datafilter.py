"""Unpacking an untrusted archive into a fresh directory by the rules of tarfile's "data" filter.

The filter came with Python 3.11.4; Debian 12's python3 (3.11.2, which rootless builds run) has none,
and there `extractall(filter="data")` fails with a TypeError. Where the filter is missing, the same
rules are applied here, member by member, before tarfile writes anything: no absolute names, nothing
that resolves outside the directory (through `..` or a link already unpacked), no links pointing
out, no device or fifo files; set-id bits and group/other write bits dropped, owners not applied.
"""

from __future__ import annotations

import copy
import os
import tarfile
from pathlib import Path


def unpack_data(archive: tarfile.TarFile, dest: Path) -> None:
    """Unpack `archive` under `dest`; a member the rules refuse raises tarfile.FilterError (or, on a Python
    without filters, tarfile.TarError) before anything of it is written."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, filter="data")
    else:
        unpack_checked(archive, dest)


def unpack_checked(archive: tarfile.TarFile, dest: Path) -> None:
    """unpack_data on a Python without extraction filters: each member checked here, then unpacked."""
    root = os.path.realpath(dest)
    for member in archive:
        archive.extract(checked(member, root), root, set_attrs=True)


def checked(member: tarfile.TarInfo, root: str) -> tarfile.TarInfo:
    """A copy of `member` as the data filter would pass it to be unpacked under the real path `root`."""
    name = member.name.lstrip("/")
    if os.path.isabs(name) or not _within(root, os.path.join(root, name)):
        raise tarfile.TarError(f"{member.name!r} would be unpacked outside the destination")
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            raise tarfile.TarError(f"{member.name!r} is a link to an absolute path")
        base = os.path.dirname(name) if member.issym() else ""
        if not _within(root, os.path.join(root, base, member.linkname)):
            raise tarfile.TarError(f"{member.name!r} links outside the destination")
    elif not (member.isreg() or member.isdir()):
        raise tarfile.TarError(f"{member.name!r} is a special file")
    placed = copy.copy(member)
    placed.name = name
    placed.mode = member.mode & 0o755
    if member.isreg() or member.islnk():
        if not placed.mode & 0o100:
            placed.mode &= ~0o111
        placed.mode |= 0o600
    placed.uid, placed.gid = os.getuid(), os.getgid()
    placed.uname = placed.gname = ""
    return placed


def _within(root: str, path: str) -> bool:
    return os.path.commonpath([root, os.path.realpath(path)]) == root
