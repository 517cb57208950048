"""Compression detection by magic bytes and streaming (de)compressors.

gzip goes through isal (an order of magnitude faster than zlib at the same ratio) and
zstd through zstandard; both release the GIL, so blob copies run in parallel threads.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

from imagetool.digest import Readable, VerifyingReader, close_quietly, verifier_behind
from imagetool.errors import LayoutError, Unsupported

GZIP = "gzip"
ZSTD = "zstd"
ALGORITHMS = (GZIP, ZSTD)
_MAGIC = {GZIP: b"\x1f\x8b", ZSTD: b"\x28\xb5\x2f\xfd"}
_BLOCK = 1 << 20
#: read-only formats: whole archives (docker-archive, oci-archive) may be xz or bzip2 files, layers are not
XZ = "xz"
BZIP2 = "bzip2"
_ARCHIVE_MAGIC = {XZ: b"\xfd7zXZ\x00", BZIP2: b"BZh"}
ARCHIVE_MAGIC_LEN = 6


def detect(head: bytes) -> str | None:
    for name, magic in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def detect_archive(head: bytes) -> str | None:
    """The compression of a whole archive file from its first ARCHIVE_MAGIC_LEN bytes."""
    for name, magic in _ARCHIVE_MAGIC.items():
        if head.startswith(magic):
            return name
    return detect(head)


class PeekReader(io.RawIOBase):
    """A reader whose first bytes were already read to sniff the format."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0 or n >= len(self._head):
                data, self._head = self._head, b""
                if n is not None and 0 <= n <= len(data):
                    return data  # a read(0) further down would look like EOF to a verifying reader
                more = self._rest.read(-1 if n is None or n < 0 else n - len(data))
                return data + (more or b"")
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._rest.read(n)

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        rest_readinto = getattr(self._rest, "readinto", None)
        if not self._head and rest_readinto is not None:
            return int(rest_readinto(buf) or 0)  # past the head: straight into the caller's buffer
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    @property
    def verifier(self) -> VerifyingReader | None:
        """The digest check of the wrapped stream, whose bytes this reader passes on unchanged (head first)."""
        return verifier_behind(self._rest)

    def close(self) -> None:
        close_quietly(self._rest)
        super().close()


def _head(stream: Readable, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def sniff(stream: Readable) -> tuple[str | None, BinaryIO]:
    """Detect the compression of a stream without losing the bytes read to do it."""
    head = _head(stream, 4)
    return detect(head), PeekReader(head, stream)  # type: ignore[return-value]


def sniff_archive(stream: Readable) -> tuple[str | None, BinaryIO]:
    """sniff() for a whole archive file, which may also be xz or bzip2."""
    head = _head(stream, ARCHIVE_MAGIC_LEN)
    return detect_archive(head), PeekReader(head, stream)  # type: ignore[return-value]


class _Source(io.RawIOBase):
    """The compressed stream as a decompressor reads it, noting whether the stream itself failed: a disk
    or network error under a decompressor is that error, not a corrupt stream."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.failed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return self._raw.read(n)
        except BaseException:
            self.failed = True
            raise

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        """Straight into the decompressor's buffer when the stream reads into buffers (a verifying reader
        of a file does): isal's reader asks for 512 KiB at a time, a copy of each saved."""
        raw_readinto = getattr(self._raw, "readinto", None)
        if raw_readinto is not None:
            try:
                return int(raw_readinto(buf) or 0)
            except NotImplementedError:  # io.RawIOBase's own, in a reader that defines read() only
                pass
            except BaseException:
                self.failed = True
                raise
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Decompressed(io.RawIOBase):
    """Wraps a decompressor so its complaints about the data surface as LayoutError ("corrupt gzip
    stream"), not a zoo of exceptions; what the compressed stream raised itself passes through as it is."""

    def __init__(self, inner: BinaryIO, source: _Source, algorithm: str,
                 corruption: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self._inner = inner
        self._source = source
        self._algorithm = algorithm
        self._corruption = corruption

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self._source.failed = False
        try:
            return self._inner.read(_BLOCK if n is None or n < 0 else n)
        except Exception as err:
            if self._source.failed or not isinstance(err, self._corruption):
                raise
            raise LayoutError(f"corrupt {self._algorithm} stream: {err}") from err

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def decompressor(stream: BinaryIO, algorithm: str | None) -> BinaryIO:
    """A reader of the uncompressed bytes of `stream`."""
    if algorithm is None:
        return stream
    source = _Source(stream)
    raw = cast(BinaryIO, source)
    inner: object
    bad: tuple[object, ...]
    if algorithm == GZIP:
        import zlib

        from isal import igzip, isal_zlib

        inner, bad = igzip.IGzipFile(fileobj=raw, mode="rb"), (isal_zlib.error, zlib.error)
    elif algorithm == ZSTD:
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        bad = (zstandard.ZstdError,)
    elif algorithm == XZ:
        import lzma

        inner, bad = lzma.LZMAFile(raw), (lzma.LZMAError,)
    elif algorithm == BZIP2:
        import bz2

        inner, bad = bz2.BZ2File(raw), ()
    else:
        raise Unsupported(f"unsupported compression {algorithm!r}")
    # every decompressor also raises EOFError for truncated data, and OSError for some bad data (gzip's
    # BadGzipFile, bz2's "Invalid data stream")
    corruption = cast(tuple[type[BaseException], ...], (EOFError, OSError, *bad))
    return cast(BinaryIO, _Decompressed(cast(BinaryIO, inner), source, algorithm, corruption))


def auto_decompressor(stream: BinaryIO) -> tuple[str | None, BinaryIO]:
    algorithm, stream = sniff(stream)
    return algorithm, decompressor(stream, algorithm)


def _isal_level(level: int | None) -> int:
    """Map zlib's 1..9 onto isal's 0..3."""
    if level is None:
        return 2
    return max(0, min(3, (level - 1) // 3 + (1 if level >= 8 else 0)))


class _CompressWriter:
    """Compressing writer whose close() finishes the stream but leaves the sink open."""

    def __init__(self, sink: BinaryIO, algorithm: str, level: int | None) -> None:
        self.algorithm = algorithm
        if algorithm == GZIP:
            from isal import igzip

            # single-threaded on purpose: blobs are compressed in parallel by the copy pool,
            # and a writer whose worker threads outlive a failed stream cannot be closed safely
            self._w: BinaryIO = igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=_isal_level(level),
                                                mtime=0)  # type: ignore[assignment]
        elif algorithm == ZSTD:
            import zstandard

            # single-threaded too: zstd's worker threads each buffer whole jobs, several per blob in flight
            cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
            self._w = cctx.stream_writer(sink, closefd=False)  # type: ignore[assignment]
        else:
            raise Unsupported(f"unsupported compression {algorithm!r}")

    def write(self, data: bytes) -> int:
        self._w.write(data)
        return len(data)

    def close(self) -> None:
        self._w.close()


def compressor(sink: BinaryIO, algorithm: str, level: int | None = None) -> _CompressWriter:
    if algorithm in (GZIP, ZSTD):
        from imagetool.parallel_compress import parallel_compressor

        return parallel_compressor(sink, algorithm, level, _isal_level(level))  # type: ignore[return-value]
    return _CompressWriter(sink, algorithm, level)
