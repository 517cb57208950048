"""zstd:chunked writing: the blob is the layer tar for any zstd reader, and its TOC, tar-split and footer
say what containers/storage's reader (pkg/chunked) expects, checked here field by field."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import subprocess
import tarfile
from pathlib import Path

import fastcrc
import pytest
import zstandard

from imagetool.errors import LayerError, Unsupported
from imagetool.layer import chunked

DEC = zstandard.ZstdDecompressor()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, size, 1_700_000_000, 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def sample_tar() -> bytes:
    big = bytes(range(256)) * (11 << 12)  # 11 MiB: three chunks of 4 MiB
    long_name = "deep/" + "n" * 150 + "/file"
    return _tar([
        (_info("deep/", tarfile.DIRTYPE, mode=0o755), None),
        (_info("deep/empty"), b""),
        (_info("deep/small", size=5, pax_headers={"SCHILY.xattr.user.k": "v\x01"}), b"hello"),
        (_info(long_name, size=3), b"abc"),
        (_info("deep/big", size=len(big), uid=1000, gid=2000), big),
        (_info("deep/link", tarfile.SYMTYPE, linkname="small"), None),
        (_info("deep/hard", tarfile.LNKTYPE, linkname="deep/small"), None),
        (_info("deep/dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_info("deep/.wh.gone", size=0), b""),
    ])


def write(tar: bytes, piece: int = 65_537, **kw: object) -> tuple[bytes, dict[str, str]]:
    out = io.BytesIO()
    w = chunked.ChunkedWriter(out, **kw)  # type: ignore[arg-type]
    for i in range(0, len(tar), piece):
        w.write(tar[i:i + piece])
    annotations = w.close()
    return out.getvalue(), annotations


def _toc(blob: bytes, ann: dict[str, str]) -> dict:  # type: ignore[type-arg]
    off, length, raw_len, kind = map(int, ann[chunked.TOC_POSITION].split(":"))
    assert kind == 1
    ctoc = blob[off:off + length]
    assert "sha256:" + hashlib.sha256(ctoc).hexdigest() == ann[chunked.TOC_CHECKSUM]
    assert blob[off - 8:off - 4] == chunked.SKIPPABLE_MAGIC and struct.unpack("<I", blob[off - 4:off])[0] == length
    raw = DEC.decompress(ctoc, max_output_size=raw_len)
    assert len(raw) == raw_len
    return json.loads(raw)  # type: ignore[no-any-return]


def _tarsplit(blob: bytes, ann: dict[str, str], toc: dict) -> list[dict]:  # type: ignore[type-arg]
    off, length, raw_len = map(int, ann[chunked.TARSPLIT_POSITION].split(":"))
    data = blob[off:off + length]
    assert "sha256:" + hashlib.sha256(data).hexdigest() == toc["tarSplitDigest"] == ann[chunked.TARSPLIT_CHECKSUM]
    raw = DEC.decompress(data, max_output_size=raw_len)
    assert len(raw) == raw_len and raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def test_any_zstd_reader_gets_the_tar_and_the_footer_points_at_the_metadata(tmp_path: Path) -> None:
    tar = sample_tar()
    blob, ann = write(tar)
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob), read_across_frames=True).read() == tar
    (tmp_path / "l.zst").write_bytes(blob)
    plain = subprocess.run(["zstd", "-dc", str(tmp_path / "l.zst")], capture_output=True, check=True).stdout
    assert plain == tar
    # the footer: a 64-byte skippable frame at the very end, with the positions of the annotations
    assert blob[-72:-64] == chunked.SKIPPABLE_MAGIC + struct.pack("<I", 64) and blob[-8:] == b"GNUlInUx"
    fields = struct.unpack("<7Q", blob[-64:-8])
    toc_pos = [int(x) for x in ann[chunked.TOC_POSITION].split(":")]
    ts_pos = [int(x) for x in ann[chunked.TARSPLIT_POSITION].split(":")]
    assert list(fields) == toc_pos[:3] + [1] + ts_pos


def test_toc_entries_match_the_tar_headers_and_ranges_decompress_alone() -> None:
    tar = sample_tar()
    blob, ann = write(tar)
    toc = _toc(blob, ann)
    assert toc["version"] == 1
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(tar))}
    contents = {m.name: tarfile.open(fileobj=io.BytesIO(tar)).extractfile(m.name).read()  # type: ignore[union-attr]
                for m in members.values() if m.isreg()}
    entries = toc["entries"]
    mains = [e for e in entries if e["type"] != "chunk"]
    assert [e["name"].rstrip("/") for e in mains] == list(members)
    for e in mains:
        m = members[e["name"].rstrip("/")]
        assert e.get("mode", 0) == m.mode and e.get("uid", 0) == m.uid and e.get("gid", 0) == m.gid
        assert e["modtime"] == "2023-11-14T22:13:20Z"
        if m.isreg() and m.size:
            data = contents[m.name]
            assert e["size"] == len(data) and e["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
            frames = DEC.stream_reader(io.BytesIO(blob[e["offset"]:e["endOffset"]]), read_across_frames=True)
            assert frames.read() == data, m.name
        else:
            assert "digest" not in e and "offset" not in e
    xattrs = next(e for e in mains if e["name"] == "deep/small")["xattrs"]
    assert xattrs == {"user.k": base64.b64encode(b"v\x01").decode()}
    assert next(e for e in mains if e["name"] == "deep/dev")["devMajor"] == 1
    assert next(e for e in mains if e["name"] == "deep/hard")["linkName"] == "deep/small"
    # the big file: a main entry and two chunk entries, contiguous, each range its own chunk
    big = [e for e in entries if e["name"] == "deep/big"]
    assert [e["type"] for e in big] == ["reg", "chunk", "chunk"]
    assert [e["chunkOffset"] if "chunkOffset" in e else 0 for e in big] == [0, 4 << 20, 8 << 20]
    assert big[0]["offset"] < big[1]["offset"] < big[2]["offset"] < big[0]["endOffset"]
    data = contents["deep/big"]
    for i, e in enumerate(big):
        end = big[i + 1]["offset"] if i + 1 < len(big) else big[0]["endOffset"]
        piece = DEC.stream_reader(io.BytesIO(blob[e["offset"]:end]), read_across_frames=True).read()
        start = e.get("chunkOffset", 0)
        assert piece == data[start:start + e["chunkSize"]]
        assert e["chunkDigest"] == "sha256:" + hashlib.sha256(piece).hexdigest()


def test_tar_split_rebuilds_the_tar_with_crc64_payloads() -> None:
    tar = sample_tar()
    blob, ann = write(tar, piece=4096)
    entries = _tarsplit(blob, ann, _toc(blob, ann))
    assert [e["position"] for e in entries] == list(range(len(entries)))
    archive = tarfile.open(fileobj=io.BytesIO(tar))
    rebuilt = b""
    for e in entries:
        if e["type"] == 2:
            rebuilt += base64.b64decode(e["payload"])
        else:
            assert e["type"] == 1
            member = archive.getmember(e["name"].rstrip("/"))
            data = archive.extractfile(member).read() if member.isreg() else b""  # type: ignore[union-attr]
            assert e.get("size", 0) == len(data)
            if data:
                assert base64.b64decode(e["payload"]) == struct.pack(">Q", fastcrc.crc64.go_iso(data))
            else:
                assert e["payload"] is None
            rebuilt += data
    assert rebuilt == tar


def test_gnu_and_ustar_archives_and_trailing_padding() -> None:
    tar = _tar([(_info("a" * 120, size=2), b"hi"), (_info("d/", tarfile.DIRTYPE), None)], fmt=tarfile.GNU_FORMAT)
    tar += bytes(10240)  # blocking-factor padding after the end marker
    blob, ann = write(tar, piece=333)
    assert DEC.stream_reader(io.BytesIO(blob), read_across_frames=True).read() == tar
    names = [e["name"] for e in _toc(blob, ann)["entries"]]
    assert names == ["a" * 120, "d/"]


@pytest.mark.parametrize("case", ["truncated", "duplicate", "global-pax", "sparse"])
def test_layers_the_format_cannot_carry_are_refused(case: str) -> None:
    if case == "truncated":
        tar, err = sample_tar()[:4096], LayerError
    elif case == "duplicate":
        tar, err = _tar([(_info("x", size=1), b"1"), (_info("./x", size=1), b"2")]), Unsupported
    elif case == "global-pax":
        tar, err = _tar([(_info("x", size=1), b"1")]), Unsupported
        tar = tarfile.TarInfo.create_pax_global_header({"comment": "x"}) + tar
    else:
        tar, err = _tar([(_info("x", size=1, pax_headers={"GNU.sparse.major": "1"}), b"1")]), Unsupported
    with pytest.raises(err):
        write(tar)
