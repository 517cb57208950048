from __future__ import annotations

import hashlib
import io

import pytest

from imagetool.digest import Digest, DigestingWriter, VerifyingReader
from imagetool.errors import DigestMismatch, InvalidDigest, SizeMismatch

DATA = b"hello world" * 1000


def test_parse_sha256_and_sha512() -> None:
    d = Digest.parse("sha256:" + hashlib.sha256(DATA).hexdigest())
    assert d == Digest.of(DATA)
    d512 = Digest.of(DATA, "sha512")
    assert Digest.parse(str(d512)) == d512
    assert len(d512.hex) == 128


@pytest.mark.parametrize("text", [
    "sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha256" + "a" * 64, "sha512:" + "a" * 64,
    "sha256:" + "g" * 64, "",
])
def test_malformed_or_unknown_digests_are_refused(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_verifying_reader_accepts_the_right_bytes() -> None:
    r = VerifyingReader(io.BytesIO(DATA), Digest.of(DATA), len(DATA))
    out = b"".join(iter(lambda: r.read(777), b""))
    assert out == DATA and r.verified


def test_verifying_reader_rejects_other_bytes() -> None:
    r = VerifyingReader(io.BytesIO(DATA[:-1] + b"X"), Digest.of(DATA), len(DATA))
    with pytest.raises(DigestMismatch) as err:
        while r.read(4096):
            pass
    assert str(Digest.of(DATA)) in str(err.value)


def test_verifying_reader_rejects_short_and_long_streams() -> None:
    with pytest.raises(SizeMismatch):
        VerifyingReader(io.BytesIO(DATA[:-5]), Digest.of(DATA), len(DATA)).drain()
    long = VerifyingReader(io.BytesIO(DATA + b"extra"), Digest.of(DATA), len(DATA))
    with pytest.raises(SizeMismatch):
        long.drain()


class _NoReadinto:
    """A stream with read() only (a response body of another kind, a decompressor)."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


class _ReadOnlyRaw(io.RawIOBase):
    """io.RawIOBase with read() only: its readinto() raises NotImplementedError."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._f = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)


@pytest.mark.parametrize("wrap", [io.BytesIO, _NoReadinto, _ReadOnlyRaw])
def test_verifying_reader_readinto_checks_as_read_does(wrap: type) -> None:
    r = VerifyingReader(wrap(DATA), Digest.of(DATA), len(DATA))
    buf = bytearray(4096)
    out = bytearray()
    while n := r.readinto(buf):
        out += buf[:n]
    assert out == DATA and r.verified
    assert r.readinto(bytearray(10)) == 0

    bad = VerifyingReader(wrap(DATA[:-1] + b"X"), Digest.of(DATA), len(DATA))
    with pytest.raises(DigestMismatch):
        while bad.readinto(buf):
            pass
    long = VerifyingReader(wrap(DATA + b"extra"), Digest.of(DATA), len(DATA))
    with pytest.raises(SizeMismatch):
        while long.readinto(memoryview(bytearray(len(DATA) * 2))):  # one buffer larger than the blob
            pass
    short = VerifyingReader(wrap(DATA[:-5]), Digest.of(DATA), len(DATA))
    with pytest.raises(SizeMismatch):
        while short.readinto(buf):
            pass
    # an empty buffer reads nothing and is not mistaken for the end of the stream
    fresh = VerifyingReader(wrap(DATA), Digest.of(DATA), len(DATA))
    assert fresh.readinto(bytearray(0)) == 0 and not fresh.verified


def test_digesting_writer_counts_and_hashes() -> None:
    sink = io.BytesIO()
    w = DigestingWriter(sink)
    w.write(DATA[:10])
    w.write(DATA[10:])
    assert w.size == len(DATA) and w.digest() == Digest.of(DATA) and sink.getvalue() == DATA
