"""Content digests and the readers/writers that compute or check them while streaming."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from imagetool.errors import DigestMismatch, InvalidDigest, SizeMismatch

_HEX_LEN = {"sha256": 64, "sha512": 128}
_HEX = "0123456789abcdef"
#: in-memory bytes up to this size (manifests, configs) may be hashed by the interpreter's own sha256 (_one_shot)
SMALL = 1 << 16
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """`algorithm:hex`, validated on construction."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX_LEN.get(self.algorithm)
        if want is None:
            raise InvalidDigest(f"unsupported digest algorithm {self.algorithm!r}")
        if len(self.hex) != want or self.hex.strip(_HEX):  # lower-case hex digits only
            raise InvalidDigest(f"malformed {self.algorithm} digest {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        alg, sep, hexpart = str(text).partition(":")
        if not sep:
            raise InvalidDigest(f"malformed digest {text!r}: expected algorithm:hex")
        return cls(alg, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, _one_shot(algorithm, data))

    @property
    def short(self) -> str:
        return self.hex[:12]

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _one_shot(algorithm: str, data: bytes) -> str:
    """The hex digest of in-memory bytes.

    While OpenSSL's hashlib backend is not loaded yet (the command line defers hashlib, imagetool/deferred.py),
    a small document is hashed by the interpreter's own sha256: loading libcrypto for _hashlib costs a small
    command more instructions (11M, 4% of `inspect docker://`) than hashing its manifest that way a thousand
    times. Streams and big data always go through hashlib, whose OpenSSL code is the faster one."""
    if len(data) <= SMALL and algorithm == "sha256" and "_hashlib" not in sys.modules:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11's built-in module
        except ImportError:
            pass
        else:
            return str(sha256(data).hexdigest())
    return hashlib.new(algorithm, data).hexdigest()


class Readable(Protocol):
    """Anything with read(n): files, sockets' bodies, the reader chains of the copy pipeline."""

    def read(self, n: int = -1, /) -> bytes: ...


def read_full(stream: Readable, n: int) -> bytes:
    """Up to `n` bytes of `stream`: fewer only where it ends (one read may return less than asked)."""
    parts = []
    want = n
    while want > 0:
        data = stream.read(want)
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def close_quietly(stream: object) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class DigestingWriter:
    """Counts and hashes everything written through it before passing it on."""

    def __init__(self, sink: Writable | None, algorithm: str = "sha256") -> None:
        self._sink = sink
        self._hash = hashlib.new(algorithm)
        self.algorithm = algorithm
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


class DigestingReader:
    """Hashes what is read through it; the digest is known once the stream is drained."""

    def __init__(self, raw: Readable, algorithm: str = "sha256") -> None:
        self._raw = raw
        self._hash = hashlib.new(algorithm)
        self.algorithm = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def close(self) -> None:
        close_quietly(self._raw)


class VerifyingReader:
    """Passes bytes through and raises at EOF (or on overrun) if they are not the described blob.

    A consumer must read to EOF before trusting anything it wrote: the check happens
    on the read that returns b"" (or on the read that crosses `size`).
    """

    def __init__(self, raw: Readable, digest: Digest, size: int | None = None) -> None:
        self._raw = raw
        self._hash = digest.hasher()
        self.expected = digest
        self.expected_size = size if size is not None and size >= 0 else None
        self.size = 0
        self.verified = False

    @property
    def source(self) -> Readable:
        """The stream checked (an upload reads it again from an offset after a cut: registry.rereads)."""
        return self._raw

    def read(self, n: int = -1) -> bytes:
        if self.verified:
            return b""
        if n is None or n < 0:
            n = CHUNK
        limit = self.expected_size
        if limit is not None and self.size + n > limit + 1:
            n = limit + 1 - self.size  # read at most one byte past the end to detect overruns
        data = self._raw.read(n) if n > 0 else b""
        if data:
            self.size += len(data)
            if limit is not None and self.size > limit:
                raise SizeMismatch(self.expected, limit, self.size)
            self._hash.update(data)
            return data
        self._finish()
        return b""

    def readinto(self, buf: bytearray | memoryview) -> int:
        """read() into the caller's buffer: straight from the stream when it reads into buffers too."""
        view = memoryview(buf).cast("B")
        n = len(view)
        if self.verified or not n:
            return 0
        limit = self.expected_size
        if limit is not None and self.size + n > limit + 1:
            n = limit + 1 - self.size  # at most one byte past the end, as read() does
        got = -1
        if (raw_readinto := getattr(self._raw, "readinto", None)) is not None:
            try:
                got = raw_readinto(view[:n]) or 0
            except NotImplementedError:  # io.RawIOBase's own, in a reader that defines read() only
                pass
        if got < 0:
            data = self._raw.read(n)
            got = len(data)
            view[:got] = data
        if got:
            self.size += got
            if limit is not None and self.size > limit:
                raise SizeMismatch(self.expected, limit, self.size)
            self._hash.update(view[:got])
            return got
        self._finish()
        return 0

    def _finish(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(self.expected, self.expected_size, self.size)
        actual = Digest(self.expected.algorithm, self._hash.hexdigest())
        if actual != self.expected:
            raise DigestMismatch(self.expected, actual)
        self.verified = True

    def drain(self) -> None:
        """Read whatever is left, so the check runs."""
        while self.read(CHUNK):
            pass

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close_quietly(self._raw)


def verifier_behind(stream: object) -> VerifyingReader | None:
    """The digest check whose bytes `stream` passes on unchanged: the stream itself, or what a pass-through
    wrapper (compression.PeekReader, the copy's progress counter) names as its `verifier`."""
    found = stream if isinstance(stream, VerifyingReader) else getattr(stream, "verifier", None)
    return found if isinstance(found, VerifyingReader) else None


def verifier_of(stream: object, expected: Digest) -> VerifyingReader | None:
    """The reader that already checks `stream`'s bytes against `expected`, so a writer need not hash them again."""
    found = verifier_behind(stream)
    return found if found is not None and found.expected == expected else None


def digest_stream(stream: BinaryIO, algorithm: str = "sha256") -> tuple[Digest, int]:
    h = hashlib.new(algorithm)
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return Digest(algorithm, h.hexdigest()), size


def digest_file(path: str, algorithm: str = "sha256") -> tuple[Digest, int]:
    with open(path, "rb") as f:
        return digest_stream(f, algorithm)
