"""The two descriptions of a layer's tar members in zstd:chunked: TOC entries (the fields of each header as
Go's archive/tar reads them, which containers/storage compares with the tar-split) and tar-split's
JSON lines (vbatts/tar-split tar/storage: raw header segments and file entries with CRC-64 payloads)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

from imagetool.errors import Unsupported
from imagetool.layer import tarreader as tr

SEGMENT_MAX = 1 << 20
_TYPES = {tr.REG: "reg", tr.AREG: "reg", tr.LNK: "hardlink", tr.SYM: "symlink", tr.CHR: "char", tr.BLK: "block",
          tr.DIR: "dir", tr.FIFO: "fifo"}
_GNU_MAGIC = b"ustar  \x00"


def rfc3339(ns: int) -> str:
    """Go's time.Time JSON form (RFC 3339 with trimmed nanoseconds), in UTC."""
    import datetime

    secs, frac = divmod(ns, 1_000_000_000)
    when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=secs)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _go_clean(name: str) -> str:
    """filepath.Clean, for the duplicate check tar-split makes."""
    import posixpath

    cleaned = posixpath.normpath(name) if name else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


class Header:
    """One member header as Go's archive/tar reads it (what containers/storage compares the TOC with)."""

    def __init__(self, block: bytes, pax: dict[str, bytes], longname: bytes | None, longlink: bytes | None) -> None:
        f = tr._HEADER.unpack_from(block, 0)
        kind = f[7]
        magic = block[257:265]
        name, link = tr.header_names(f, longname, longlink)
        self.mode = tr._number(f[1], "mode")
        self.uid = tr._number(f[2], "uid")
        self.gid = tr._number(f[3], "gid")
        self.size = tr._number(f[4], "size")
        self.mtime_ns = tr._number(f[5], "mtime") * 1_000_000_000
        self.atime_ns = self.ctime_ns = 0
        self.devmajor = self.devminor = 0
        if magic[:6] == b"ustar\x00" or magic == _GNU_MAGIC:
            self.devmajor = tr._number(f[11], "devmajor")
            self.devminor = tr._number(f[12], "devminor")
        if magic == _GNU_MAGIC:
            if block[345]:
                self.atime_ns = tr._number(block[345:357], "atime") * 1_000_000_000
            if block[357]:
                self.ctime_ns = tr._number(block[357:369], "ctime") * 1_000_000_000
        self.xattrs: dict[str, str] = {}
        for key, value in pax.items():
            if key == "path":
                name = value
            elif key == "linkpath":
                link = value
            elif key == "size":
                self.size = tr._decimal(value, "size")
            elif key == "uid":
                self.uid = tr._decimal(value, "uid")
            elif key == "gid":
                self.gid = tr._decimal(value, "gid")
            elif key in ("mtime", "atime", "ctime"):
                setattr(self, f"{key}_ns", tr._time_ns(value))
            elif key.startswith("SCHILY.xattr."):
                self.xattrs[key[13:]] = base64.b64encode(value).decode()
            elif key.startswith("GNU.sparse."):
                raise Unsupported("zstd:chunked: sparse tar members are not supported")
        try:
            self.name = name.decode("utf-8")
            self.linkname = link.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Unsupported(f"zstd:chunked: tar member name {name!r} is not UTF-8") from err
        if kind == tr.AREG and self.name.endswith("/"):
            kind = tr.DIR
        if kind not in _TYPES:
            raise Unsupported(f"zstd:chunked: tar member {self.name!r} has type {kind!r}, which the format lacks")
        self.kind = kind
        if kind not in (tr.REG, tr.AREG) and self.size:
            raise Unsupported(f"zstd:chunked: tar member {self.name!r} is a {_TYPES[kind]} with a size")

    def toc_entry(self) -> dict[str, object]:
        """The TOC fields of the header, zero values left out (Go's omitempty)."""
        e: dict[str, object] = {"type": _TYPES[self.kind], "name": self.name}
        for key, value in (("linkName", self.linkname), ("mode", self.mode), ("size", self.size),
                           ("uid", self.uid), ("gid", self.gid), ("devMajor", self.devmajor),
                           ("devMinor", self.devminor), ("xattrs", self.xattrs)):
            if value:
                e[key] = value
        for key, ns in (("modtime", self.mtime_ns), ("accesstime", self.atime_ns), ("changetime", self.ctime_ns)):
            if ns:
                e[key] = rfc3339(ns)
        return e


class TarSplit:
    """tar-split's JSON-lines packer (vbatts/tar-split tar/storage), zstd-compressed into a spool file."""

    def __init__(self, cctx: object) -> None:
        import tempfile

        self.spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self._z = cctx.compressobj()  # type: ignore[attr-defined]
        self._hash = hashlib.sha256()
        self.size = 0          # uncompressed
        self.compressed = 0
        self._pos = 0
        self._seen: set[str] = set()

    def _add(self, entry: dict[str, object]) -> None:
        entry["position"] = self._pos
        self._pos += 1
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        self.size += len(line)
        self._out(self._z.compress(line))

    def _out(self, data: bytes) -> None:
        if data:
            self.spool.write(data)
            self._hash.update(data)
            self.compressed += len(data)

    def segment(self, raw: bytes) -> None:
        for start in range(0, len(raw), SEGMENT_MAX):
            self._add({"type": 2, "payload": base64.b64encode(raw[start:start + SEGMENT_MAX]).decode()})

    def file(self, name: str, size: int, crc: int | None) -> None:
        clean = _go_clean(name)
        if clean in self._seen:
            raise Unsupported(f"zstd:chunked: the layer names {name!r} twice (tar-split refuses duplicates)")
        self._seen.add(clean)
        entry: dict[str, object] = {"type": 1, "name": name}
        if size:
            entry["size"] = size
        entry["payload"] = base64.b64encode(struct.pack(">Q", crc)).decode() if crc is not None else None
        self._add(entry)

    def finish(self) -> str:
        self._out(self._z.flush())
        self.spool.seek(0)
        return "sha256:" + self._hash.hexdigest()
