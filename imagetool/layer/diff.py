"""An overlay upperdir -> a deterministic, uncompressed layer tar.

The upperdir of a RUN step holds exactly what the step changed: new and modified files
as themselves, deletions as overlay whiteouts (0/0 character devices), replaced
directories as opaque directories. The tar turns those into OCI whiteouts
(`.wh.NAME`, `.wh..wh..opq`). Entries are sorted by name, depth first (a directory
before its contents), owners are numeric, user/group names empty, mtimes whole seconds
(clamped to `timestamp` when given), overlayfs's own xattrs dropped and hardlinks kept
(the first name in order carries the data): the same tree always gives the same bytes,
so the same diff_id. xattrs are kept; only "not supported" and "no data" count as none.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from imagetool import userns
from imagetool.errors import LayerError
from imagetool.layer import tarwriter as tw
from imagetool.layer import whiteout as wh

_READ = 1 << 20
REG, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"


#: what a filesystem says when it has no xattrs, or a name went away between list and get
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def _xattrs(path: str) -> dict[str, bytes] | None:
    """The xattrs a layer keeps; any failure but "not supported"/"no data" fails the commit, since a
    dropped security.capability would silently change what the image's files may do."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in _NO_XATTRS:
            return None
        raise LayerError(f"reading the xattrs of {path}: {err.strerror}") from err
    found = {}
    for name in names:
        if wh.is_overlay_xattr(name):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as err:
            if err.errno in _NO_XATTRS:
                continue
            raise LayerError(f"reading xattr {name} of {path}: {err.strerror}") from err
    return found or None


class _Differ:
    def __init__(self, out: BinaryIO, timestamp: int | None) -> None:
        self.w = tw.TarWriter(out)
        self.timestamp = timestamp
        self.links: dict[tuple[int, int], bytes] = {}

    def _mtime(self, st: os.stat_result) -> int:
        mtime = int(st.st_mtime)
        return mtime if self.timestamp is None else min(mtime, self.timestamp)

    def walk(self, directory: str, prefix: bytes) -> None:
        names = sorted(os.listdir(os.fsencode(directory)))
        for raw in names:
            path = os.path.join(directory, os.fsdecode(raw))
            name = prefix + raw
            st = os.lstat(path)
            mode = st.st_mode
            if wh.is_whiteout(st):
                self.w.write(tw.member(prefix + b".wh." + raw, REG, stat.S_IMODE(mode), st.st_uid, st.st_gid, 0,
                                       self._mtime(st)))
            elif stat.S_ISDIR(mode):
                self._header(name + b"/", DIR, st, path)
                if wh.is_opaque(path):
                    self.w.write(tw.member(name + b"/" + wh.OPAQUE.encode(), REG, 0, 0, 0, 0, self._mtime(st)))
                self.walk(path, name + b"/")
            elif stat.S_ISREG(mode):
                self._file(name, st, path)
            elif stat.S_ISLNK(mode):
                self._header(name, SYM, st, path, linkname=os.fsencode(os.readlink(path)))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                self._header(name, CHR if stat.S_ISCHR(mode) else BLK, st, path,
                             devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev))
            elif stat.S_ISFIFO(mode):
                self._header(name, FIFO, st, path)
            # sockets have no tar form and are left out, as by every tar

    def _header(self, name: bytes, kind: bytes, st: os.stat_result, path: str, size: int = 0,
                linkname: bytes = b"", devmajor: int = 0, devminor: int = 0) -> None:
        self.w.write(tw.member(name, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, self._mtime(st),
                               linkname, devmajor, devminor, _xattrs(path)))

    def _file(self, name: bytes, st: os.stat_result, path: str) -> None:
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                self._header(name, LNK, st, path, linkname=first)
                return
            self.links[key] = name
        size = st.st_size
        self._header(name, REG, st, path, size=size)
        left = size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while left:
                data = os.read(fd, min(_READ, left))
                if not data:
                    break
                self.w.write(data)
                left -= len(data)
        finally:
            os.close(fd)
        if left:
            raise LayerError(f"{path} shrank while it was being archived")
        self.w.write(tw.pad(size))


def write_diff(upperdir: Path, out: BinaryIO, timestamp: int | None = None) -> None:
    """Write the layer tar of `upperdir` (an overlay upperdir or any plain tree) to `out`.

    Rootless, the tree is read inside the store's user namespace, so the tar has the ids
    the container saw (caller 0, subordinate ids from 1, anything unmapped 65534, as
    buildah) and file capabilities in the form root would read, never host-side values.
    """
    userns.produce(lambda sink: _write_diff(upperdir, sink, timestamp), out)


def _write_diff(upperdir: Path, out: BinaryIO, timestamp: int | None) -> None:
    differ = _Differ(out, timestamp)
    differ.walk(str(upperdir), b"")
    differ.w.close()
