"""tar-split for containers/storage layers: `overlay-layers/<id>.tar-split.gz`.

containers/storage keeps, beside each layer's unpacked diff, the tar's own bytes minus the file contents
(vbatts/tar-split "storage" JSON lines, gzip-compressed): raw segments (headers, padding, the end blocks)
and one file entry per member with its size and the CRC-64 (ISO, Go's table) of its content. Putting the
segments back together with the contents read from the diff gives the exact tar the layer came from, so
its diff-digest verifies when the layer is copied out again.

`record` writes one for an uncompressed tar on disk (as tar-split's NewInputTarStream does, member by
member, following Go's archive/tar in naming); `assemble` rebuilds the tar from one and a diff directory.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
from collections.abc import Iterator
from typing import BinaryIO

import fastcrc

from imagetool.errors import LayerError
from imagetool.layer import tarreader as tr
from imagetool.layer.safepath import Resolver, clean

_HEADER_ONLY = (tr.LNK, tr.SYM, tr.CHR, tr.BLK, tr.DIR, tr.FIFO)
_CHUNK = 1 << 20
#: one JSON line of a tar-split is at most a segment (base64) plus a name: anything far larger is not one
_MAX_LINE = 64 << 20


def _crc(fd: int, size: int, sink: BinaryIO | None = None) -> bytes:
    crc = 0
    left = size
    while left:
        block = os.read(fd, min(left, _CHUNK))
        if not block:
            raise LayerError("truncated tar: the stream ends inside a member")
        crc = fastcrc.crc64.go_iso(block, crc)
        if sink is not None:
            sink.write(block)
        left -= len(block)
    return crc.to_bytes(8, "big")


class _Packer:
    """tar-split's JSON packer: entries numbered by position, file names unique (it refuses duplicates)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0
        self._seen: set[str] = set()

    def _add(self, entry: dict[str, object]) -> None:
        entry["position"] = self._pos
        self._pos += 1
        self._out.write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def segment(self, raw: bytes) -> None:
        if raw:
            self._add({"type": 2, "payload": base64.b64encode(raw).decode()})

    def file(self, name: bytes, size: int, crc: bytes | None) -> None:
        key = os.path.normpath(b"/" + name)
        text = None
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if key.decode("utf-8", "surrogateescape") in self._seen:
            raise LayerError(f"the layer names {name.decode('utf-8', 'replace')!r} twice "
                             "(containers/storage refuses duplicate paths)")
        self._seen.add(key.decode("utf-8", "surrogateescape"))
        entry: dict[str, object] = {"type": 1}
        if text is not None:
            if text:
                entry["name"] = text
        else:
            entry["name_raw"] = base64.b64encode(name).decode()
        if size:
            entry["size"] = size
        entry["payload"] = base64.b64encode(crc).decode() if crc is not None else None
        self._add(entry)


class Ids:
    """The owners a layer's members name (containers/storage lists them as the layer's uidset/gidset), and
    whether the tar has a member for the root directory itself (else the diff keeps the mode it was made with)."""

    def __init__(self) -> None:
        self.uids: set[int] = set()
        self.gids: set[int] = set()
        self.has_root = False
        self.root_owner = (0, 0)


def _cstring(field: bytes) -> bytes:
    return field.partition(b"\0")[0]


def record(tar_path: str, out_path: str) -> Ids:
    """Write the gzip tar-split of the uncompressed tar at `tar_path` to `out_path`; returns the owners."""
    ids = Ids()
    fd = os.open(tar_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open(out_path, "wb") as raw_out, gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) as out:
            _record(fd, _Packer(out), ids)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    return ids


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        block = os.read(fd, n - len(data))
        if not block:
            raise LayerError("truncated tar: the stream ends inside a member")
        data += block
    return data


def _record(fd: int, packer: _Packer, ids: Ids) -> None:
    raw = bytearray()
    pax: dict[str, bytes] = {}
    longname: bytes | None = None
    while True:
        block = os.read(fd, tr.BLOCK)
        if len(block) < tr.BLOCK:
            block += _read_exact(fd, tr.BLOCK - len(block)) if block else b""
        if not block or not any(block):
            # the end blocks and whatever follows them: one last segment (tar-split keeps them verbatim)
            raw += block
            while rest := os.read(fd, _CHUNK):
                raw += rest
            packer.segment(bytes(raw))
            return
        if tr._number(block[148:156], "checksum") != sum(block) - sum(block[148:156]) + 256:
            raise LayerError("corrupt tar: header checksum mismatch (not a tar, or damaged)")
        raw += block
        kind = block[156:157]
        size = tr._number(block[124:136], "size")
        if kind in (tr.PAX, tr.GNU_LONGNAME, tr.GNU_LONGLINK):
            if size > tr.MAX_META:
                raise LayerError(f"tar metadata header of {size} bytes (limit {tr.MAX_META})")
            data = _read_exact(fd, size + -size % tr.BLOCK)
            raw += data
            if kind == tr.PAX:
                pax.update(tr.parse_pax(data[:size]))
            elif kind == tr.GNU_LONGNAME:
                longname = _cstring(data[:size])
            continue
        if kind in (tr.PAX_GLOBAL, tr.GNU_SPARSE):
            raise LayerError("tar members of type 'g' (PAX global) or 'S' (sparse) are not supported "
                             "in containers-storage layers")
        # the member's name as Go's archive/tar gives it: PAX path, GNU long name, USTAR prefix + name
        name = _cstring(block[0:100])
        if block[257:263] == b"ustar\x00":
            prefix = _cstring(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        if longname is not None:
            name = longname
        if "path" in pax:
            name = pax["path"]
        if "size" in pax:
            size = tr._decimal(pax["size"], "size")
        uid = tr._decimal(pax["uid"], "uid") if "uid" in pax else tr._number(block[108:116], "uid")
        gid = tr._decimal(pax["gid"], "gid") if "gid" in pax else tr._number(block[116:124], "gid")
        ids.uids.add(uid)
        ids.gids.add(gid)
        pax, longname = {}, None
        if not clean(name.decode("utf-8", "surrogateescape")):
            ids.has_root, ids.root_owner = True, (uid, gid)
        if kind in _HEADER_ONLY and size:
            raise LayerError(f"tar member {name.decode('utf-8', 'replace')!r} is a {kind!r} entry with a size")
        packer.segment(bytes(raw))
        raw.clear()
        crc = _crc(fd, size) if size else None
        packer.file(name, size, crc)
        pad = -size % tr.BLOCK
        if pad:
            raw += _read_exact(fd, pad)


def _entries(stream: BinaryIO) -> Iterator[dict[str, object]]:
    for n, line in enumerate(iter(lambda: stream.readline(_MAX_LINE), b"")):
        try:
            entry = json.loads(line)
        except ValueError as err:
            raise LayerError("the layer's tar-split is not JSON lines") from err
        if not isinstance(entry, dict) or entry.get("type") not in (1, 2):
            raise LayerError(f"the layer's tar-split has a malformed entry at line {n + 1}")
        yield entry


def _b64(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True) if value is not None else b""
    except (binascii.Error, ValueError) as err:
        raise LayerError("the layer's tar-split has bad base64") from err


def assemble(tarsplit_path: str, diff: str) -> Iterator[bytes]:
    """The layer's tar: the tar-split's segments, with each file's content read from `diff` (names
    resolved inside it) and checked against its CRC-64. The caller verifies the whole against the
    layer's diff-digest."""
    resolver = Resolver(diff)
    with gzip.open(tarsplit_path, "rb") as stream:
        for entry in _entries(stream):  # type: ignore[arg-type]
            if entry["type"] == 2:
                yield _b64(entry.get("payload"))
                continue
            size = entry.get("size", 0)
            if not isinstance(size, int) or size < 0:
                raise LayerError("the layer's tar-split has a bad size")
            if not size:
                continue
            name = entry.get("name")
            if not isinstance(name, str):
                name = _b64(entry.get("name_raw")).decode("utf-8", "surrogateescape")
            path = resolver.path(clean(name), create=False)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as err:
                raise LayerError(f"layer file {name!r}: {err.strerror}") from err
            try:
                crc, left = 0, size
                while left:
                    block = os.read(fd, min(left, _CHUNK))
                    if not block:
                        raise LayerError(f"layer file {name!r} is shorter than the tar-split says")
                    crc = fastcrc.crc64.go_iso(block, crc)
                    left -= len(block)
                    yield block
            finally:
                os.close(fd)
            expected = entry.get("payload")
            if expected is not None and _b64(expected) != crc.to_bytes(8, "big"):
                raise LayerError(f"layer file {name!r} does not match its checksum in the tar-split")
