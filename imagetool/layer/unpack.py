"""Stream a layer tar into a directory, safely and about as fast as GNU tar.

Safety: every member goes through safepath (no name or symlink leads outside the root;
hardlink targets resolve the same way and may not be directories), overlayfs's own xattrs
are never taken from a layer, device nodes are made only when allowed (root), and a
truncated or corrupt archive raises LayerError / UnsafeContent with one line.

Speed: members come from tarreader as buffer slices written with os.write on a raw fd;
owners, modes and times are set through the open descriptor, and only when they differ
from what open() already gave; parent directories are resolved once and cached.
Directory modes and times are set at the end, so read-only directories can be filled.

Whiteouts: "overlay" makes overlay whiteouts (a snapshot, to be a lowerdir), "apply"
deletes what they name (a flat rootfs, as `umoci unpack`), "keep" writes them as the
plain files they are (as `tar -x`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from imagetool import userns
from imagetool.errors import ImagetoolError, LayerError, UnsafeContent
from imagetool.layer import tarreader as tr
from imagetool.layer import whiteout as wh
from imagetool.layer.safepath import Resolver, clean

if TYPE_CHECKING:
    from imagetool.digest import Readable

WHITEOUT_MODES = ("overlay", "apply", "keep")
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINK = 1 << 16


@dataclass
class UnpackOptions:
    whiteouts: str = "overlay"
    #: make device nodes (default: when root); otherwise they are skipped, as rootless engines do
    devices: bool | None = None
    #: set owners from the archive (default: when root)
    chown: bool | None = None
    #: a partial pull's files already in another snapshot: entry -> that file, hard-linked instead of
    #: written when its owner, mode and time are the entry's (the data still streams past, to be hashed)
    reuse: Callable[[tr.Entry], str | None] | None = None


@dataclass
class UnpackStats:
    entries: int = 0
    bytes: int = 0
    #: members not created, each with the reason (devices when not allowed, xattrs the fs refused)
    skipped: list[str] = field(default_factory=list)


class Unpacker:
    def __init__(self, root: str | Path, options: UnpackOptions | None = None) -> None:
        self.o = options or UnpackOptions()
        if self.o.whiteouts not in WHITEOUT_MODES:
            raise ValueError(f"whiteouts must be one of {WHITEOUT_MODES}")
        # in a user namespace root may chown (to mapped ids) but not make devices
        self.devices = userns.privileged() if self.o.devices is None else self.o.devices
        self.chown = os.geteuid() == 0 if self.o.chown is None else self.o.chown
        self.resolver = Resolver(str(root))
        self.stats = UnpackStats()
        umask = os.umask(0o022)
        os.umask(umask)
        self._umask = umask
        self._ids = (os.geteuid(), os.getegid())
        self._dirs: list[tuple[tuple[str, ...], int, int]] = []   # (parts, mode, mtime_ns), set at the end
        self._mine: set[tuple[str, ...]] | None = set() if self.o.whiteouts == "apply" else None

    # -- driver

    def unpack(self, stream: Readable) -> UnpackStats:
        reader = tr.TarReader(stream)
        while True:
            entry = reader.next()
            if entry is None:
                break
            self.stats.entries += 1
            try:
                self._entry(entry, reader)
            except ImagetoolError:
                raise
            except (OSError, ValueError, OverflowError) as err:
                detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                if isinstance(err, OSError) and err.errno == errno.EINVAL and self.chown and not userns.initial():
                    detail = (f"owner {entry.uid}:{entry.gid} is not mapped in the user namespace "
                              "(not enough ids in /etc/subuid and /etc/subgid?)")
                raise LayerError(f"unpacking {entry.name!r}: {detail}") from err
        self._finish_dirs()
        reader.drain()
        return self.stats

    def _entry(self, e: tr.Entry, reader: tr.TarReader) -> None:
        parts = clean(e.name)
        kind = e.type
        if not parts:
            if kind != tr.DIR:
                raise UnsafeContent(f"tar member {e.name!r} names the target directory itself")
            self._dirs.append(((), e.mode, e.mtime_ns))
            return
        base = parts[-1]
        if base.startswith(wh.PREFIX) and self.o.whiteouts != "keep":
            self._whiteout(parts, e)
            return
        if self._mine is not None:
            self._mine.add(parts)
        path = self.resolver.path(parts)
        if kind in (tr.REG, tr.AREG, tr.CONT):
            self._file(path, e, reader)
        elif kind == tr.DIR or kind == b"D":
            self._dir(parts, path, e)
        elif kind == tr.SYM:
            self._replace(path, lambda: os.symlink(e.linkname, path))
            self._meta(path, e, symlink=True)
        elif kind == tr.LNK:
            self._hardlink(path, e)
        elif kind in (tr.CHR, tr.BLK):
            if not self.devices:
                self.stats.skipped.append(f"{e.name}: device node (not created without privilege)")
                return
            fmt = stat.S_IFCHR if kind == tr.CHR else stat.S_IFBLK
            self._replace(path, lambda: os.mknod(path, fmt | 0o600, os.makedev(e.devmajor, e.devminor)))
            self._meta(path, e)
        elif kind == tr.FIFO:
            self._replace(path, lambda: os.mkfifo(path, 0o600))
            self._meta(path, e)
        else:
            raise LayerError(f"tar member {e.name!r} has unsupported type {kind!r}")

    # -- member kinds

    def _file(self, path: str, e: tr.Entry, reader: tr.TarReader) -> None:
        mode = e.mode & 0o7777
        if self.o.reuse is not None and not e.xattrs and self._link(path, e):
            for _ in reader.chunks():
                pass
            return
        try:
            fd = os.open(path, _O_CREATE, mode & 0o777)
        except FileExistsError:
            self._remove(path)
            fd = os.open(path, _O_CREATE, mode & 0o777)
        try:
            reader.write_to(fd)
            self.stats.bytes += e.size
            owner = self.chown and (e.uid != self._ids[0] or e.gid != self._ids[1])
            if owner:
                os.fchown(fd, e.uid, e.gid)
            if owner or mode & (self._umask | 0o7000):
                os.fchmod(fd, mode)  # after chown, which clears setuid bits
            if e.xattrs:
                self._xattrs(fd, e)
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        finally:
            os.close(fd)

    def _link(self, path: str, e: tr.Entry) -> bool:
        source = self.o.reuse(e)  # type: ignore[misc]
        if source is None:
            return False
        try:
            st = os.lstat(source)
        except OSError:
            return False
        owner = (e.uid, e.gid) if self.chown else self._ids
        if not stat.S_ISREG(st.st_mode) or st.st_size != e.size or stat.S_IMODE(st.st_mode) != e.mode & 0o7777 \
                or (st.st_uid, st.st_gid) != owner or st.st_mtime_ns != e.mtime_ns:
            return False
        try:
            self._replace(path, lambda: os.link(source, path))
        except OSError:
            return False
        self.stats.bytes += e.size
        return True

    def _dir(self, parts: tuple[str, ...], path: str, e: tr.Entry) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                self._remove(path)
                os.mkdir(path, 0o700)
        self.resolver.remember(parts, path)
        if self.chown and (e.uid, e.gid) != self._ids:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if e.xattrs:
            self._xattrs(path, e)
        self._dirs.append((parts, e.mode & 0o7777, e.mtime_ns))

    def _hardlink(self, path: str, e: tr.Entry) -> None:
        target_parts = clean(e.linkname)
        if not target_parts:
            raise UnsafeContent(f"hardlink {e.name!r} points at the target directory itself")
        target = self.resolver.path(target_parts, create=False)
        try:
            st = os.lstat(target)
        except FileNotFoundError as err:
            raise LayerError(f"hardlink {e.name!r} -> {e.linkname!r}: the target is not in the layer") from err
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeContent(f"hardlink {e.name!r} -> {e.linkname!r} points at a directory")
        if target == path:
            return
        self._replace(path, lambda: os.link(target, path, follow_symlinks=False))

    def _whiteout(self, parts: tuple[str, ...], e: tr.Entry) -> None:
        base = parts[-1]
        if base == wh.OPAQUE:
            directory = self.resolver.directory(parts[:-1])
            if self.o.whiteouts == "overlay":
                wh.mark_opaque(directory)
            else:
                mine = self._mine or set()
                keep = {p[-1] for p in mine if p[:-1] == parts[:-1]}
                wh.clear_directory(directory, keep)
                self.resolver.forget()
            return
        name = wh.whiteout_target(base)
        if name is None:
            return  # other .wh..wh. files are AUFS bookkeeping with no meaning here
        if name in ("", ".", ".."):
            raise UnsafeContent(f"whiteout {e.name!r} names no file in its directory")
        victim = parts[:-1] + (name,)
        path = self.resolver.path(victim)
        if self.o.whiteouts == "overlay":
            try:
                os.lstat(path)
                return  # a member of this same layer: whiteouts hide only what lies below
            except FileNotFoundError:
                pass
            try:
                wh.make_whiteout(path)  # 0/0 devices are allowed without CAP_MKNOD (Linux >= 5.8)
            except PermissionError as err:
                raise LayerError(f"whiteout {e.name!r}: this process may not create overlay whiteouts") from err
            self._meta(path, e)
        elif self._mine is not None and victim not in self._mine:
            if wh.remove_any(path):
                self.resolver.forget()

    # -- helpers

    def _replace(self, path: str, create: object) -> None:
        try:
            create()  # type: ignore[operator]
        except FileExistsError:
            self._remove(path)
            create()  # type: ignore[operator]

    def _remove(self, path: str) -> None:
        """Clear the way for a member that replaces an earlier one; cached paths may now be stale."""
        wh.remove_any(path)
        self.resolver.forget()

    def _meta(self, path: str, e: tr.Entry, symlink: bool = False) -> None:
        if self.chown and (e.uid, e.gid) != self._ids:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if not symlink:
            os.chmod(path, e.mode & 0o7777)
        if e.xattrs:
            self._xattrs(path, e)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)

    def _xattrs(self, target: int | str, e: tr.Entry) -> None:
        for key, value in e.xattrs.items():  # type: ignore[union-attr]
            if wh.is_overlay_xattr(key):
                self.stats.skipped.append(f"{e.name}: xattr {key} (overlayfs's own, never taken from a layer)")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
                    raise
                self.stats.skipped.append(f"{e.name}: xattr {key} ({err.strerror})")

    def _finish_dirs(self) -> None:
        """Directory modes and times, last: children change a directory's mtime and need it writable."""
        for parts, mode, mtime_ns in reversed(self._dirs):
            try:
                path = self.resolver.directory(parts, create=False)
            except LayerError:
                continue  # removed by a later member
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)


def unpack(stream: Readable, root: str | Path, options: UnpackOptions | None = None) -> UnpackStats:
    """Unpack an uncompressed tar stream into `root` (which must exist)."""
    return Unpacker(root, options).unpack(stream)


def unpack_layer(blob: BinaryIO, root: str | Path, options: UnpackOptions | None = None) -> UnpackStats:
    """Unpack a layer blob, compressed or not (gzip and zstd are sniffed)."""
    from imagetool import compression

    _algorithm, stream = compression.auto_decompressor(blob)
    return unpack(stream, root, options)
