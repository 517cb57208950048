"""Writing zstd:chunked layers: a zstd stream any reader decompresses to the exact layer tar,
with a table of contents (TOC) and tar-split data in skippable frames for partial pulls.

The layout is containers/storage's (pkg/chunked/compressor, pkg/chunked/internal/minimal):

    [frame: tar headers (+ the padding before them)] [frame: file content chunk] ... [frame: end marker]
    [skippable: zstd(TOC JSON)] [skippable: zstd(tar-split JSON lines)] [skippable: 64-byte footer]

Each regular file's content starts a new frame, and large contents are split into frames of
CHUNK_SIZE bytes, so a byte range of the blob decompresses on its own to one file (or chunk).
The TOC lists every member with the metadata of its tar header, the sha256 of its content and
the blob offsets of its frames; the tar-split keeps the raw header bytes so the tar (and so the
diff_id) can be rebuilt exactly from files. The layer descriptor carries the TOC's digest and
position in annotations: the digest is what makes the TOC trustworthy to a partial puller.

The writer is push-style (write/close, like the other compressors) and streams: it holds one
header at a time, the TOC entries and the compressed tar-split (spooled to disk when large).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import BinaryIO

from imagetool.errors import LayerError, Unsupported
from imagetool.layer import tarreader as tr
from imagetool.layer.chunked_tar import Header, TarSplit

NAME = "zstd:chunked"
#: containers/storage's annotation keys (pkg/chunked/internal/minimal)
TOC_CHECKSUM = "io.github.containers.zstd-chunked.manifest-checksum"
TOC_POSITION = "io.github.containers.zstd-chunked.manifest-position"
TARSPLIT_POSITION = "io.github.containers.zstd-chunked.tarsplit-position"
#: older readers (containers/storage before the TOC's tarSplitDigest) check the tar-split with this
TARSPLIT_CHECKSUM = "io.github.containers.zstd-chunked.tarsplit-checksum"
#: the names containers/storage used before November 2022 (v1.44; Debian 12's podman 4.3 and skopeo 1.9
#: read only these), written beside the current ones so those versions pull partially too
LEGACY_TOC_CHECKSUM = "io.containers.zstd-chunked.manifest-checksum"
LEGACY_TOC_POSITION = "io.containers.zstd-chunked.manifest-position"
ANNOTATION_PREFIX = "io.github.containers.zstd-chunked."
ANNOTATION_PREFIXES = (ANNOTATION_PREFIX, "io.containers.zstd-chunked.")
SKIPPABLE_MAGIC = b"\x50\x2a\x4d\x18"
FOOTER_MAGIC = b"GNUlInUx"
FOOTER_SIZE = 64
#: a skippable frame's header: magic + little-endian u32 length
FRAME_HEADER = 8
TOC_TYPE_CRFS = 1
CHUNK_SIZE = 4 << 20
_SEGMENT_MAX = 1 << 20


def skippable(data: bytes) -> bytes:
    return SKIPPABLE_MAGIC + struct.pack("<I", len(data)) + data


def footer(toc_offset: int, toc_len: int, toc_raw_len: int, ts_offset: int, ts_len: int, ts_raw_len: int) -> bytes:
    return struct.pack("<7Q", toc_offset, toc_len, toc_raw_len, TOC_TYPE_CRFS, ts_offset, ts_len,
                       ts_raw_len) + FOOTER_MAGIC


class ChunkedWriter:
    """Push-style: write(tar bytes)..., close() -> the layer descriptor's annotations."""

    def __init__(self, sink: BinaryIO, level: int | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        import zstandard

        self._sink = sink
        self._cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
        self._frame = self._cctx.compressobj()
        self._offset = 0                   # bytes written to the sink
        self._chunk_size = chunk_size
        self._hdr = bytearray()            # bytes of the header block (or metadata data) being collected
        self._need = tr.BLOCK              # how many bytes _hdr must reach
        self._meta: bytes | None = None    # the type of the metadata member whose data is being collected
        self._meta_size = 0
        self._raw = bytearray()            # raw bytes since the last member's content: padding, metadata headers
        self._pax: dict[str, bytes] = {}
        self._longname: bytes | None = None
        self._longlink: bytes | None = None
        self._remaining = 0                # content bytes left of the current file
        self._pad = 0                      # padding bytes left after it
        self._ended = False
        self._zero_blocks = 0
        self._file: dict[str, object] | None = None
        self._entries: list[dict[str, object]] = []
        # a ZstdCompressor drives one stream at a time: the tar-split has its own
        self._tarsplit = TarSplit(zstandard.ZstdCompressor(level=3 if level is None else level))
        self.annotations: dict[str, str] = {}

    # -- output

    def _emit(self, data: bytes) -> None:
        if data:
            self._sink.write(data)
            self._offset += len(data)

    def _compress(self, data: bytes | memoryview) -> None:
        self._emit(self._frame.compress(data))

    def _restart(self) -> int:
        """End the current frame; the next data starts a new one at the returned offset."""
        self._emit(self._frame.flush())
        self._frame = self._cctx.compressobj()
        return self._offset

    # -- input

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        pos, end = 0, len(view)
        while pos < end:
            if self._remaining:
                n = min(self._remaining, end - pos)
                self._content(view[pos:pos + n])
                pos += n
            elif self._pad:
                n = min(self._pad, end - pos)
                self._raw += view[pos:pos + n]
                self._pad -= n
                pos += n
            elif self._ended:
                self._raw += view[pos:end]
                pos = end
                if len(self._raw) >= _SEGMENT_MAX:
                    self._flush_raw()
            else:
                n = min(self._need - len(self._hdr), end - pos)
                self._hdr += view[pos:pos + n]
                pos += n
                if len(self._hdr) == self._need:
                    self._header_ready()
        return len(data)

    def _flush_raw(self) -> None:
        raw = bytes(self._raw)
        self._raw.clear()
        self._compress(raw)
        self._tarsplit.segment(raw)

    def _header_ready(self) -> None:
        data = bytes(self._hdr)
        self._hdr.clear()
        if self._meta is not None:  # the data of a PAX / GNU long-name member (its padding included)
            kind, self._meta, self._need = self._meta, None, tr.BLOCK
            self._raw += data
            body = data[:self._meta_size]
            if kind == tr.PAX:
                self._pax.update(tr.parse_pax(body))
            elif kind == tr.GNU_LONGNAME:
                self._longname = body.split(b"\0", 1)[0]
            else:
                self._longlink = body.split(b"\0", 1)[0]
            return
        if not any(data):
            self._raw += data
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._ended = True
            return
        if self._zero_blocks:
            raise LayerError("corrupt tar: a single zero block inside the archive")
        if tr._number(data[148:156], "checksum") != sum(data) - sum(data[148:156]) + 256:
            raise LayerError("corrupt tar: header checksum mismatch (not a tar, or damaged)")
        kind = data[156:157]
        if kind in (tr.PAX, tr.GNU_LONGNAME, tr.GNU_LONGLINK):
            size = tr._number(data[124:136], "size")
            if size > tr.MAX_META:
                raise LayerError(f"tar metadata header of {size} bytes (limit {tr.MAX_META})")
            self._raw += data
            self._meta, self._meta_size = kind, size
            self._need = size + -size % tr.BLOCK
            if self._need == 0:
                self._meta, self._need = None, tr.BLOCK
            return
        if kind == tr.PAX_GLOBAL:
            raise Unsupported("zstd:chunked: PAX global headers have no place in the format")
        hdr = Header(data, self._pax, self._longname, self._longlink)
        self._pax, self._longname, self._longlink = {}, None, None
        self._raw += data
        self._flush_raw()
        entry = hdr.toc_entry()
        if hdr.size and hdr.kind in (tr.REG, tr.AREG):
            self._start_file(entry, hdr)
        else:
            self._entries.append(entry)
            self._tarsplit.file(hdr.name, 0, None)

    # -- file content

    def _start_file(self, entry: dict[str, object], hdr: Header) -> None:
        import fastcrc

        self._crc_fn = fastcrc.crc64.go_iso
        self._file = entry
        self._file_name = hdr.name
        self._remaining = hdr.size
        self._pad = -hdr.size % tr.BLOCK
        self._sha = hashlib.sha256()
        self._crc: int | None = None
        self._chunks: list[dict[str, object]] = []
        self._one_chunk = hdr.size <= self._chunk_size  # then the file's digest is the chunk's: hashed once
        self._new_chunk(0)

    def _new_chunk(self, at: int) -> None:
        self._chunk_start = at
        self._chunk_left = self._chunk_size
        self._chunk_sha = hashlib.sha256()
        self._chunks.append({"chunkOffset": at, "offset": self._restart()})

    def _content(self, data: memoryview) -> None:
        while data:
            if not self._chunk_left:
                self._end_chunk()
                self._new_chunk(self._chunk_start + self._chunk_size)
            part = data[:self._chunk_left]
            data = data[len(part):]
            self._chunk_left -= len(part)
            self._remaining -= len(part)
            self._sha.update(part)
            if not self._one_chunk:
                self._chunk_sha.update(part)
            self._crc = self._crc_fn(part, initial=self._crc) if self._crc is not None else self._crc_fn(part)
            self._compress(part)
        if not self._remaining:
            self._end_chunk()
            self._end_file()

    def _end_chunk(self) -> None:
        chunk = self._chunks[-1]
        chunk["endOffset"] = self._restart()
        chunk["chunkSize"] = self._chunk_size - self._chunk_left
        chunk["chunkDigest"] = "sha256:" + (self._sha if self._one_chunk else self._chunk_sha).hexdigest()

    def _end_file(self) -> None:
        entry = self._file
        assert entry is not None
        chunks = self._chunks
        entry["digest"] = "sha256:" + self._sha.hexdigest()
        entry["offset"] = chunks[0]["offset"]
        entry["endOffset"] = chunks[-1]["endOffset"]
        self._entries.append(entry)
        if len(chunks) > 1:
            entry["chunkSize"] = chunks[0]["chunkSize"]
            entry["chunkDigest"] = chunks[0]["chunkDigest"]
            for chunk in chunks[1:]:
                self._entries.append({"type": "chunk", "name": entry["name"], **chunk})
        self._tarsplit.file(self._file_name, int(entry["size"]), self._crc)  # type: ignore[call-overload]
        self._file = None

    # -- the end

    def close(self) -> dict[str, str]:
        if not self._ended or self._remaining or self._hdr:
            raise LayerError("truncated tar: the stream ends without an end-of-archive marker")
        self._flush_raw()
        self._restart()
        ts_digest = self._tarsplit.finish()
        toc = json.dumps({"version": 1, "entries": self._entries, "tarSplitDigest": ts_digest},
                         separators=(",", ":")).encode()
        ctoc = self._cctx.compress(toc)  # every frame is flushed: the context is free
        toc_offset = self._offset + FRAME_HEADER
        self._emit(skippable(ctoc))
        ts_offset = self._offset + FRAME_HEADER
        ts_len = self._tarsplit.compressed
        if ts_len >= 1 << 32 or len(ctoc) >= 1 << 32:
            raise Unsupported("zstd:chunked: the layer's metadata exceeds a skippable frame")
        self._emit(SKIPPABLE_MAGIC + struct.pack("<I", ts_len))
        while block := self._tarsplit.spool.read(1 << 20):
            self._emit(block)
        self._tarsplit.spool.close()
        self._emit(skippable(footer(toc_offset, len(ctoc), len(toc), ts_offset, ts_len, self._tarsplit.size)))
        self.annotations = {
            TOC_CHECKSUM: "sha256:" + hashlib.sha256(ctoc).hexdigest(),
            TOC_POSITION: f"{toc_offset}:{len(ctoc)}:{len(toc)}:{TOC_TYPE_CRFS}",
            TARSPLIT_POSITION: f"{ts_offset}:{ts_len}:{self._tarsplit.size}",
            TARSPLIT_CHECKSUM: ts_digest,
        }
        self.annotations[LEGACY_TOC_CHECKSUM] = self.annotations[TOC_CHECKSUM]
        self.annotations[LEGACY_TOC_POSITION] = self.annotations[TOC_POSITION]
        return self.annotations


def strip_annotations(annotations: Mapping[str, str] | None) -> dict[str, str] | None:
    """A layer's annotations without zstd:chunked ones (for a rewritten blob they would lie)."""
    if not annotations:
        return None
    kept = {k: v for k, v in annotations.items() if not k.startswith(ANNOTATION_PREFIXES)}
    return kept or None


def algorithm(name: str | None) -> str | None:
    """The compression a media type names: zstd:chunked layers are zstd layers."""
    return "zstd" if name == NAME else name


def is_chunked(annotations: Mapping[str, str] | None) -> bool:
    return bool(annotations) and TOC_CHECKSUM in (annotations or {})
