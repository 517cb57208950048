"""The lean tar reader agrees with Python's tarfile on real archives (GNU tar's pax and gnu formats,
tarfile's own GNU base-256 numbers), and streams member data in bounded slices."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagetool.errors import LayerError
from imagetool.layer import tarwriter as tw
from imagetool.layer.tarreader import TarReader, parse_pax
from tests.lib.layertree import make_tree


def _ours(data: bytes) -> list[tuple]:
    reader = TarReader(io.BytesIO(data), read_size=4096)
    out = []
    for e in reader:
        h = hashlib.sha256()
        for chunk in reader.chunks():
            assert len(chunk) <= 4096
            h.update(chunk)
        out.append((e.name.rstrip("/"), e.mode, e.uid, e.gid, e.size, e.mtime_ns // 10**9, e.linkname,
                     h.hexdigest(), dict(e.xattrs or {})))
    return out


def _theirs(data: bytes) -> list[tuple]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            content = t.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            xattrs = {k[13:]: v.encode("utf-8", "surrogateescape") for k, v in m.pax_headers.items()
                      if k.startswith("SCHILY.xattr.")}
            out.append((m.name.rstrip("/"), m.mode, m.uid, m.gid, m.size if m.isreg() else 0, int(m.mtime),
                        m.linkname, hashlib.sha256(content).hexdigest(), xattrs))
    return out


@pytest.mark.parametrize("fmt", ["pax", "gnu", "ustar"])
def test_agrees_with_tarfile_on_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    make_tree(tmp_path / "src", files=150)
    extra = ["--xattrs", "--xattrs-include=*"] if fmt == "pax" else []
    if fmt == "ustar":  # ustar cannot hold the deep or long names: archive the plain part only
        target = ["d0", "d1"]
    else:
        target = ["."]
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", f"--format={fmt}", *extra, "--sort=name", "-C", str(tmp_path / "src"), "-cf",
                    str(archive), *target], check=True)
    data = archive.read_bytes()
    ours = _ours(data)
    assert ours == _theirs(data)
    assert len(ours) > 150
    if fmt != "ustar":
        assert any(len(name) > 100 for name, *_ in ours)  # long names came through PAX or 'L' records


def test_base256_numbers_and_fractional_times() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo("big-ids")
        info.uid, info.gid, info.size = 3_000_000_000, 2**40, 3
        t.addfile(info, io.BytesIO(b"abc"))
    entry = next(iter(TarReader(io.BytesIO(buf.getvalue()))))
    assert (entry.uid, entry.gid, entry.size) == (3_000_000_000, 2**40, 3)
    pax = parse_pax(b"30 mtime=1600000000.123456789\n")
    assert pax == {"mtime": b"1600000000.123456789"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("frac")
        info.mtime = 1600000000.25  # type: ignore[assignment]
        t.addfile(info, io.BytesIO(b""))
    entry = next(iter(TarReader(io.BytesIO(buf.getvalue()))))
    assert entry.mtime_ns == 1_600_000_000_250_000_000


def test_global_pax_header_applies_to_later_members() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "4242"}) as t:
        for name in ("a", "b"):
            t.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    assert [e.uid for e in TarReader(io.BytesIO(buf.getvalue()))] == [4242, 4242]


class _Dribble(io.RawIOBase):
    """A stream that returns at most `step` bytes a read: headers straddle the reader's refills."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


@pytest.mark.parametrize("step", [1, 100, 700, 1500])
def test_headers_split_across_reads(tmp_path: Path, step: int) -> None:
    """Short reads that cut headers and PAX records anywhere give the same members as whole reads."""
    make_tree(tmp_path / "src", files=40)
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "--format=pax", "--sort=name", "-C", str(tmp_path / "src"), "-cf", str(archive), "."],
                   check=True)
    data = archive.read_bytes()
    reader = TarReader(_Dribble(data, step), read_size=step)
    got = []
    for e in reader:
        h = hashlib.sha256()
        for chunk in reader.chunks():
            h.update(chunk)
        got.append((e.name.rstrip("/"), e.mode, e.uid, e.gid, e.size, e.mtime_ns // 10**9, e.linkname,
                    h.hexdigest(), dict(e.xattrs or {})))
    assert got == _theirs(data)
    truncated = TarReader(_Dribble(data[:len(data) // 2 + 300], step), read_size=step)
    with pytest.raises(LayerError):
        for _ in truncated:
            pass


def test_numbers_are_strict_octal() -> None:
    """Signs, underscores and stray characters in a numeric field are corrupt, not a number."""
    good = tw.ustar_block(b"f", b"0", size=3) + b"abc" + tw.pad(3) + bytes(1024)
    assert [e.size for e in TarReader(io.BytesIO(good))] == [3]
    for bad_size in (b"-0000003\0\0\0\0", b"0_3\0\0\0\0\0\0\0\0\0", b"0000003x\0\0\0\0"):
        block = bytearray(good[:512])
        block[124:136] = bad_size
        block[148:156] = b"        "
        block[148:156] = b"%06o\0 " % sum(block)
        with pytest.raises(LayerError, match="not a number"):
            list(TarReader(io.BytesIO(bytes(block) + good[512:])))
