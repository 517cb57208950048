"""Reading zstd:chunked metadata for a partial pull: annotations, the TOC and the tar-split, all hostile input.

Trust flows from the layer descriptor: the TOC is used only once its compressed bytes match the
manifest-checksum annotation, the tar-split only once it matches the digest the TOC gives. Even then
nothing here is taken on faith: every position must lie inside the blob's content area, file ranges
may not overlap, sizes are bounded, names may not climb out of the layer, and the tar-split must
agree with the TOC. Fetched file contents are checked against the TOC's digests by the caller, and the
tar rebuilt from the tar-split and those contents must hash to the diff_id before anything is used;
the files are written by the ordinary unpacker from that tar, never from TOC names.
Any violation raises TOCError with one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from imagetool.digest import Digest, Readable
from imagetool.errors import InvalidDigest, LayerError
from imagetool.layer import chunked

#: containers/storage refuses TOCs above 150 MiB too (maxTocSize)
MAX_TOC = 150 << 20
MAX_TARSPLIT = 1 << 30
MAX_SEGMENT = 4 << 20
MAX_FILE = 1 << 40
_TYPES = {"reg", "hardlink", "symlink", "char", "block", "dir", "fifo", "chunk"}


class TOCError(LayerError):
    """A zstd:chunked layer whose metadata cannot be trusted or used."""


class NotRebuildable(Exception):
    """A zstd:chunked variant without the tar-split a verified rebuild needs (older writers): the
    layer is pulled whole instead."""


@dataclass(frozen=True)
class Position:
    offset: int
    length: int
    raw_length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Layout:
    toc: Position
    tarsplit: Position
    toc_digest: Digest
    #: where the content frames end (the first skippable frame's header)
    content_end: int


@dataclass(frozen=True)
class FileRange:
    """A regular file's content: its frames span blob[offset:end] and decompress to `size` bytes."""

    name: str
    size: int
    digest: Digest
    offset: int
    end: int


@dataclass
class TOC:
    files: dict[str, FileRange]          # by clean name, regular files with content
    names: dict[str, str]                # clean name -> type, every entry
    tarsplit_digest: Digest | None
    entries: list[dict[str, object]]


def clean(name: str) -> str:
    """The key a name is matched by (Go's filepath.Clean without the leading slash)."""
    return posixpath.normpath("/" + name).lstrip("/") or "."


def _ints(text: object, count: int, what: str) -> list[int]:
    if not isinstance(text, str):
        raise TOCError(f"zstd:chunked: {what} annotation missing")
    parts = text.split(":")
    if len(parts) != count or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise TOCError(f"zstd:chunked: malformed {what} annotation {text[:80]!r}")
    return [int(p) for p in parts]


def layout(annotations: dict[str, str] | None, blob_size: int) -> Layout:
    """The TOC's and tar-split's positions from the descriptor, checked against the blob's size."""
    ann = dict(annotations or {})
    try:
        digest = Digest.parse(ann.get(chunked.TOC_CHECKSUM, ""))
    except InvalidDigest as err:
        raise TOCError(f"zstd:chunked: bad TOC digest annotation: {err}") from err
    t_off, t_len, t_raw, kind = _ints(ann.get(chunked.TOC_POSITION), 4, "manifest-position")
    if chunked.TARSPLIT_POSITION not in ann:
        raise NotRebuildable()
    s_off, s_len, s_raw = _ints(ann.get(chunked.TARSPLIT_POSITION), 3, "tarsplit-position")
    if kind != chunked.TOC_TYPE_CRFS:
        raise TOCError(f"zstd:chunked: unknown TOC type {kind}")
    toc, ts = Position(t_off, t_len, t_raw), Position(s_off, s_len, s_raw)
    if t_len > MAX_TOC or t_raw > MAX_TOC or s_raw > MAX_TARSPLIT or s_len > MAX_TARSPLIT:
        raise TOCError("zstd:chunked: TOC or tar-split larger than the limit")
    for pos, what in ((toc, "TOC"), (ts, "tar-split")):
        if pos.offset < chunked.FRAME_HEADER or pos.length == 0 or pos.end > blob_size:
            raise TOCError(f"zstd:chunked: the {what} position lies outside the blob")
    if toc.offset < ts.end and ts.offset < toc.end:
        raise TOCError("zstd:chunked: the TOC and the tar-split overlap")
    return Layout(toc, ts, digest, min(toc.offset, ts.offset) - chunked.FRAME_HEADER)


def check_footer(data: bytes, lay: Layout) -> None:
    """The blob's last 72 bytes: a skippable frame holding the footer, which must say what the annotations do."""
    import struct

    want = chunked.SKIPPABLE_MAGIC + struct.pack("<I", chunked.FOOTER_SIZE)
    if len(data) != chunked.FRAME_HEADER + chunked.FOOTER_SIZE or not data.startswith(want) \
            or not data.endswith(chunked.FOOTER_MAGIC):
        raise TOCError("zstd:chunked: the blob does not end with a zstd:chunked footer")
    fields = struct.unpack("<7Q", data[chunked.FRAME_HEADER:-8])
    if fields != (lay.toc.offset, lay.toc.length, lay.toc.raw_length, chunked.TOC_TYPE_CRFS, lay.tarsplit.offset,
                  lay.tarsplit.length, lay.tarsplit.raw_length):
        raise TOCError("zstd:chunked: the footer and the annotations disagree")


def _decompress(data: bytes, raw_length: int, what: str) -> bytes:
    import io

    import zstandard

    try:
        out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read(
            raw_length + 1)
    except zstandard.ZstdError as err:
        raise TOCError(f"zstd:chunked: corrupt {what}: {err}") from err
    if len(out) != raw_length:
        raise TOCError(f"zstd:chunked: the {what} is not the size its position says")
    return out


def _check_digest(data: bytes, digest: Digest, what: str) -> None:
    if hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
        raise TOCError(f"zstd:chunked: the {what} does not match its digest")


def _int(e: dict[str, object], key: str, limit: int = MAX_FILE) -> int:
    value = e.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > limit:
        raise TOCError(f"zstd:chunked: TOC entry {str(e.get('name'))[:80]!r} has a bad {key}")
    return value


def parse_toc(data: bytes, lay: Layout) -> TOC:
    """Verify and parse the compressed TOC (the bytes at lay.toc)."""
    if len(data) != lay.toc.length:
        raise TOCError("zstd:chunked: short TOC")
    _check_digest(data, lay.toc_digest, "TOC")
    try:
        doc = json.loads(_decompress(data, lay.toc.raw_length, "TOC"))
    except ValueError as err:
        raise TOCError("zstd:chunked: the TOC is not JSON") from err
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("entries"), list):
        raise TOCError("zstd:chunked: the TOC is not a version 1 TOC")
    ts_digest = None
    if doc.get("tarSplitDigest"):
        try:
            ts_digest = Digest.parse(doc["tarSplitDigest"])
        except InvalidDigest as err:
            raise TOCError("zstd:chunked: the TOC's tarSplitDigest is malformed") from err
    files: dict[str, FileRange] = {}
    names: dict[str, str] = {}
    current: dict[str, object] | None = None   # the regular file chunk entries belong to
    last_chunk = 0
    for e in doc["entries"]:
        if not isinstance(e, dict):
            raise TOCError("zstd:chunked: a TOC entry is not an object")
        kind, name = e.get("type"), e.get("name")
        if kind not in _TYPES or not isinstance(name, str) or not name or "\0" in name or len(name) > 4096:
            raise TOCError(f"zstd:chunked: TOC entry {str(name)[:80]!r} has a bad type or name")
        key = clean(name)
        if ".." in name.split("/"):
            raise TOCError(f"zstd:chunked: TOC entry {name[:80]!r} leaves the layer")
        if kind == "chunk":
            off = _int(e, "offset")
            if current is None or key != clean(str(current["name"])) or not last_chunk < off < _int(current,
                                                                                                     "endOffset"):
                raise TOCError(f"zstd:chunked: chunk entry {name[:80]!r} does not follow its file in order")
            if not 0 < _int(e, "chunkOffset") < _int(current, "size"):
                raise TOCError(f"zstd:chunked: chunk entry {name[:80]!r} lies outside its file")
            last_chunk = off
            continue
        current = None
        if key in names:
            raise TOCError(f"zstd:chunked: the TOC names {name[:80]!r} twice")
        names[key] = kind  # type: ignore[assignment]
        size = _int(e, "size")
        if kind != "reg" and size:
            raise TOCError(f"zstd:chunked: TOC entry {name[:80]!r} is a {kind} with a size")
        if kind == "reg" and size:
            offset, end = _int(e, "offset"), _int(e, "endOffset")
            if not 0 < offset < end <= lay.content_end:
                raise TOCError(f"zstd:chunked: the range of {name[:80]!r} lies outside the blob's content")
            try:
                digest = Digest.parse(str(e.get("digest", "")))
            except InvalidDigest as err:
                raise TOCError(f"zstd:chunked: TOC entry {name[:80]!r} has no valid digest") from err
            files[key] = FileRange(name, size, digest, offset, end)
            current, last_chunk = e, offset
    ranges = sorted(files.values(), key=lambda f: f.offset)
    for a, b in zip(ranges, ranges[1:], strict=False):
        if b.offset < a.end:
            raise TOCError(f"zstd:chunked: the ranges of {a.name[:80]!r} and {b.name[:80]!r} overlap")
    return TOC(files, names, ts_digest, doc["entries"])


def open_tarsplit(data: bytes, lay: Layout, toc: TOC, annotations: dict[str, str] | None) -> BinaryIO:
    """Verify the compressed tar-split and spool it decompressed (it may be large) for rebuild()."""
    import io

    import zstandard

    digest = toc.tarsplit_digest
    if digest is None:
        if chunked.TARSPLIT_CHECKSUM not in (annotations or {}):
            raise NotRebuildable()
        try:
            digest = Digest.parse((annotations or {})[chunked.TARSPLIT_CHECKSUM])
        except InvalidDigest as err:
            raise TOCError("zstd:chunked: no digest authenticates the tar-split") from err
    if len(data) != lay.tarsplit.length:
        raise TOCError("zstd:chunked: short tar-split")
    _check_digest(data, digest, "tar-split")
    spool = tempfile.TemporaryFile()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        total = 0
        while block := reader.read(1 << 20):
            total += len(block)
            if total > lay.tarsplit.raw_length:
                break
            spool.write(block)
        if total != lay.tarsplit.raw_length:
            raise TOCError("zstd:chunked: the tar-split is not the size its position says")
    except zstandard.ZstdError as err:
        spool.close()
        raise TOCError(f"zstd:chunked: corrupt tar-split: {err}") from err
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _entries(spool: BinaryIO) -> Iterator[dict[str, object]]:
    for n, line in enumerate(spool):
        if len(line) > 2 * MAX_SEGMENT:
            raise TOCError("zstd:chunked: a tar-split entry is too large")
        try:
            e = json.loads(line)
        except ValueError as err:
            raise TOCError("zstd:chunked: the tar-split is not JSON lines") from err
        if not isinstance(e, dict) or e.get("position") != n or e.get("type") not in (1, 2):
            raise TOCError("zstd:chunked: a tar-split entry is malformed or out of place")
        yield e


def _b64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as err:
        raise TOCError(f"zstd:chunked: bad base64 in the tar-split ({what})") from err


def rebuild(spool: BinaryIO, toc: TOC, content: Callable[[FileRange], Readable]) -> Iterator[bytes]:
    """The layer tar, from the tar-split's raw segments and each file's content (content(f) reads exactly
    f.size bytes of it); the caller hashes the result against the diff_id."""
    seen: set[str] = set()
    for e in _entries(spool):
        if e["type"] == 2:
            payload = _b64(e.get("payload"), "segment")
            if len(payload) > MAX_SEGMENT:
                raise TOCError("zstd:chunked: a tar-split segment is too large")
            yield payload
            continue
        name = e.get("name")
        if not isinstance(name, str):
            raw = e.get("name_raw")
            name = _b64(raw, "name").decode("utf-8", "surrogateescape") if raw else ""
        key = clean(name)
        size = e.get("size", 0)
        if key in seen or key not in toc.names:
            raise TOCError(f"zstd:chunked: the tar-split names {name[:80]!r}, which the TOC does not (or twice)")
        seen.add(key)
        found = toc.files.get(key)
        if not isinstance(size, int) or size != (found.size if found else 0):
            raise TOCError(f"zstd:chunked: the tar-split and the TOC disagree on the size of {name[:80]!r}")
        if found is None:
            continue
        stream = content(found)
        left = size
        try:
            while left:
                block = stream.read(min(left, 1 << 20))
                if not block:
                    raise TOCError(f"zstd:chunked: the content of {name[:80]!r} is short")
                left -= len(block)
                yield block
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    if len(seen) != len(toc.names):
        raise TOCError("zstd:chunked: the TOC lists entries the tar-split lacks")

