"""ADD of a local archive: its members unpacked under the destination as Docker unpacks them.

Docker (the classic builder's chrootarchive and BuildKit's unpack alike) extracts inside a
chroot at the destination directory, so a member's name and the symlinks it passes through
(the archive's own or the image's) resolve there: `/x`, `../x` and a link `up -> ..` all stay
under the destination. An entry named `.` (or nothing) is the destination itself and is
skipped; an existing path is replaced unless both it and the member are directories.
Modes, owners and times are the archive's (setuid bits included).
"""

from __future__ import annotations

import copy
import os
import posixpath
import stat
import tarfile
from typing import TYPE_CHECKING, Any

from imagetool import pathresolve
from imagetool.errors import BuildError, UnsafeContent

if TYPE_CHECKING:
    from imagetool.build.copier import Copier

_MAX_LINKS = pathresolve.SECUREJOIN_MAX_LINKS
#: names are resolved here, so tarfile's own checks (and, from Python 3.14, its default "data" filter
#: that drops setuid bits) stay out; Debian 12's Python 3.11.2 has no extraction filters at all
_TRUSTED: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def unpack(copier: Copier, tar: tarfile.TarFile, dest: str) -> None:
    """Extract `tar` (read as a stream) under the image directory `dest` (already made and resolved)."""
    root = dest.rstrip("/")
    for member in tar:
        name = _inside(copier, root, member.name, follow_last=False)
        if name is None:
            continue  # "." or "": the destination itself
        parent = copier.ensure_dir(posixpath.dirname(name) or "/", None)
        target = f"{parent.rstrip('/')}/{posixpath.basename(name)}"
        up = copier.upper / target.lstrip("/")
        existing = copier.view.lstat(target)
        if member.isdir() and existing is not None and stat.S_ISDIR(existing.st_mode):
            copier.ensure_dir(target, None)  # copied up; the member's metadata goes on it below
        else:
            copier.remove(up)
        linkname = member.linkname
        if member.islnk():
            link = _inside(copier, root, member.linkname, follow_last=False)
            if link is None:
                raise BuildError(f"ADD: {member.name}: a hard link to the destination directory")
            linkname = link.lstrip("/")
        placed = copy.copy(member)
        placed.name, placed.linkname = target.lstrip("/"), linkname
        try:
            tar.extract(placed, copier.upper, numeric_owner=True, **_TRUSTED)
        except (OSError, tarfile.TarError) as err:
            raise BuildError(f"ADD: unpacking {member.name}: {err}") from err


def _inside(copier: Copier, root: str, name: str, follow_last: bool) -> str | None:
    """`name` resolved in a chroot at the image directory `root`: an image path, None for the root itself."""
    def readlink(parts: tuple[str, ...]) -> str | None:
        found = copier.view.locate(f"{root}/{'/'.join(parts)}")
        return os.readlink(found[0]) if found and stat.S_ISLNK(found[1].st_mode) else None

    try:
        parts = pathresolve.resolve(readlink, "/" + name, follow_last=follow_last, max_links=_MAX_LINKS)
    except pathresolve.SymlinkLoop as err:
        raise UnsafeContent(f"ADD: {name}: too many levels of symbolic links") from err
    return f"{root}/{'/'.join(parts)}" if parts else None

