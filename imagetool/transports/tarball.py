"""Tar plumbing for the archive transports: a random-access reader and a streaming writer.

The reader indexes an archive's headers once and then serves any regular member as a
byte range of the file (each stream has its own descriptor, so blobs can be read from
several threads), following symlinks and hard links inside the archive. The writer appends
entries to a temp file beside the final path; an entry whose size or name (a digest) is
known only at the end gets a placeholder header that is rewritten in place once the data is
written, so nothing is held in memory or spooled twice.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from imagetool import compression
from imagetool.digest import CHUNK, Digest, DigestingWriter, Readable
from imagetool.errors import LayoutError
from imagetool.outputs import OutputFile

BLOCK = tarfile.BLOCKSIZE
_MAX_LINKS = 16


def clean_name(name: str) -> str:
    """An archive member's name without ./ prefixes or trailing slashes ("" for the root)."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return "" if cleaned == "." else cleaned


class RangeReader(io.RawIOBase):
    """`size` bytes of a file from `offset`, read with pread on a descriptor of its own."""

    def __init__(self, path: str, offset: int, size: int, what: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._pos = offset
        self._left = size
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = os.pread(self._fd, min(want, CHUNK * 4), self._pos)
        if not data:
            raise LayoutError(f"{self._what}: archive is truncated")
        self._pos += len(data)
        self._left -= len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ArchiveReader:
    """The members of a tar file (decompressed first into a temp file if the archive is compressed:
    gzip, zstd, xz or bzip2, as containers/image reads them)."""

    def __init__(self, path: str, temp_dir: str) -> None:
        self.display = path
        self._temp: str | None = None
        try:
            with open(path, "rb") as f:
                algorithm = compression.detect_archive(f.read(compression.ARCHIVE_MAGIC_LEN))
        except FileNotFoundError as err:
            raise LayoutError(f"{path}: no such file") from err
        except IsADirectoryError as err:
            raise LayoutError(f"{path}: is a directory, not an archive") from err
        self.path = path
        if algorithm is not None:
            self.path = self._temp = self._decompress(path, algorithm, temp_dir)
        try:
            self.members = self._index()
        except BaseException:
            self.close()
            raise

    def _decompress(self, path: str, algorithm: str, temp_dir: str) -> str:
        fd, tmp = tempfile.mkstemp(prefix="docker-archive-", suffix=".tar", dir=temp_dir)
        try:
            with open(path, "rb") as raw, os.fdopen(fd, "wb") as out:
                stream = compression.decompressor(raw, algorithm)  # type: ignore[arg-type]
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
        except BaseException as err:
            os.unlink(tmp)
            if isinstance(err, (EOFError, OSError, LayoutError)):
                raise LayoutError(f"{path}: truncated or corrupt {algorithm} archive: {err}") from err
            raise
        return tmp

    def _index(self) -> dict[str, tarfile.TarInfo]:
        size = os.path.getsize(self.path)
        members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                for member in tar:
                    if member.isreg() and member.offset_data + member.size > size:
                        raise LayoutError(f"{self.display}: archive is truncated "
                                          f"(entry {member.name!r} is cut short)")
                    members[clean_name(member.name)] = member
        except (tarfile.TarError, EOFError) as err:
            raise LayoutError(f"{self.display}: truncated or corrupt archive: {err}") from err
        return members

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular member `name` refers to, through symlinks and hard links within the archive."""
        current = clean_name(name)
        for _ in range(_MAX_LINKS):
            member = self.members.get(current)
            if member is None:
                raise LayoutError(f"{self.display}: archive has no entry {name!r}")
            if member.isreg():
                if member.sparse:
                    raise LayoutError(f"{self.display}: entry {name!r} is a sparse file")
                return member
            if member.issym():
                target = posixpath.join(posixpath.dirname(current), member.linkname)
            elif member.islnk():
                target = member.linkname
            else:
                raise LayoutError(f"{self.display}: entry {name!r} is not a file")
            if posixpath.isabs(member.linkname) or posixpath.normpath(target).startswith(".."):
                raise LayoutError(f"{self.display}: entry {name!r} links outside the archive")
            current = clean_name(target)
        raise LayoutError(f"{self.display}: entry {name!r}: too many levels of links")

    def open(self, name: str) -> RangeReader:
        member = self.resolve(name)
        return RangeReader(self.path, member.offset_data, member.size, f"{self.display}: {name}")

    def read_small(self, name: str, limit: int) -> bytes:
        member = self.resolve(name)
        if member.size > limit:
            raise LayoutError(f"{self.display}: entry {name!r} is larger than {limit} bytes")
        with self.open(name) as f:
            return f.read(member.size)

    def close(self) -> None:
        if self._temp is not None:
            try:
                os.unlink(self._temp)
            except FileNotFoundError:
                pass
            self._temp = None


def _header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "",
            mode: int = 0o444) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 0
    small = size < 8 ** 11 and len(name) <= 100
    return info.tobuf(format=tarfile.USTAR_FORMAT if small else tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class TarWriter:
    """Appends entries to a temp tar file; finish() renames it into place, abort() removes it."""

    def __init__(self, out: OutputFile) -> None:
        self._out = out
        self.tmp = out.tmp
        self._f = out.open()
        self._entries: dict[str, tuple[int, int]] = {}

    @classmethod
    def beside(cls, path: Path) -> TarWriter:
        """A writer for the archive at `path` (a device or FIFO there is written into, not replaced)."""
        return cls(OutputFile(path))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._f.write(_header(name, len(data)))
        self._entries[name] = (self._f.tell(), len(data))
        self._f.write(data + _padding(len(data)))

    def add_symlink(self, name: str, target: str) -> None:
        self._f.write(_header(name, 0, tarfile.SYMTYPE, target, mode=0))

    def add_stream(self, stream: Readable, name_for: Callable[[Digest], str],
                   skip_if: Callable[[Digest], bool] = lambda d: False,
                   verified_as: Digest | None = None) -> tuple[Digest, int]:
        """Write a stream as an entry named after its digest; nothing is left behind if it fails or is skipped.

        `verified_as` is the digest a verifying `stream` checks at EOF: it is not hashed a second time.
        """
        start = self._f.tell()
        # the header is written after the data (its size is known then); a name known up front may
        # need a longer header (sha512 names pass ustar's 100 bytes), and that is the room kept for it
        room = len(_header(name_for(verified_as), 0)) if verified_as is not None else BLOCK
        try:
            self._f.write(b"\0" * room)  # placeholder header, rewritten below
            if verified_as is None:
                sink = DigestingWriter(self._f)
                while chunk := stream.read(CHUNK):
                    sink.write(chunk)
                digest, size = sink.digest(), sink.size
            else:
                size = 0
                while chunk := stream.read(CHUNK):
                    self._f.write(chunk)
                    size += len(chunk)
                digest = verified_as
            if skip_if(digest):
                self._rewind(start)
                return digest, size
            header = _header(name_for(digest), size)
            if len(header) != room:
                raise LayoutError(f"archive entry {name_for(digest)!r} needs an extended header")
            self._f.write(_padding(size))
            end = self._f.tell()
            self._f.seek(start)
            self._f.write(header)
            self._f.seek(end)
            self._entries[name_for(digest)] = (start + room, size)
            return digest, size
        except BaseException:
            self._rewind(start)
            raise

    def _rewind(self, pos: int) -> None:
        self._f.seek(pos)
        self._f.truncate()

    def read_back(self, name: str, limit: int) -> bytes:
        """An entry written earlier (the image config, which the legacy metadata repeats)."""
        offset, size = self._entries[name]
        if size > limit:
            raise LayoutError(f"archive entry {name!r} is larger than {limit} bytes")
        self._f.flush()
        return os.pread(self._f.fileno(), size, offset)

    def finish(self, path: Path) -> None:
        self._f.write(b"\0" * (2 * BLOCK))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._out.commit()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self._out.abort()
