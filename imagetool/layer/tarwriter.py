"""Tar headers written by hand: ustar when the member fits, a PAX header in front when it does not.

Layer diffs must be byte-for-byte reproducible, so this writer sets every field itself
(numeric owners, empty user/group names, integer mtimes, no atime/ctime records) rather
than leaving choices to tarfile. The block builders are public so tests can craft broken
or hostile archives with the same code paths.
"""

from __future__ import annotations

from typing import BinaryIO

BLOCK = 512
FLUSH_AT = 1 << 20
_OCTAL_LIMITS = {8: 0o7777777, 12: 0o77777777777}


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def checksum(block: bytes | bytearray) -> bytes:
    return b"%06o\0 " % (sum(block) - sum(block[148:156]) + 256)


def ustar_block(name: bytes, kind: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, size: int = 0,
                mtime: int = 0, linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
                prefix: bytes = b"") -> bytes:
    """One POSIX ustar header block; the caller makes sure every field fits."""
    b = bytearray(BLOCK)
    b[0:len(name)] = name
    b[100:108] = _octal(mode, 8)
    b[108:116] = _octal(uid, 8)
    b[116:124] = _octal(gid, 8)
    b[124:136] = _octal(size, 12)
    b[136:148] = _octal(mtime, 12)
    b[148:156] = b" " * 8
    b[156:157] = kind
    b[157:157 + len(linkname)] = linkname
    b[257:265] = b"ustar\x0000"
    b[329:337] = _octal(devmajor, 8)
    b[337:345] = _octal(devminor, 8)
    b[345:345 + len(prefix)] = prefix
    b[148:156] = checksum(b)
    return bytes(b)


def pax_records(records: dict[str, bytes]) -> bytes:
    """PAX "<len> <key>=<value>\\n" records, the length counting its own digits."""
    out = []
    for key, value in records.items():
        body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        out.append(str(length).encode() + body)
    return b"".join(out)


def pad(size: int) -> bytes:
    return bytes(-size % BLOCK)


def _split(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, or None if the name needs PAX."""
    if len(name) <= 100:
        return b"", name
    cut = name.rfind(b"/", 0, 156)
    while cut > 0:
        if len(name) - cut - 1 <= 100:
            return name[:cut], name[cut + 1:]
        cut = name.rfind(b"/", 0, cut)
    return None


def member(name: bytes, kind: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
           xattrs: dict[str, bytes] | None = None) -> bytes:
    """The header block(s) for one member: PAX first when a field does not fit ustar or xattrs exist."""
    records: dict[str, bytes] = {}
    split = _split(name)
    if split is None:
        records["path"] = name
        split = b"", name[:100]
    if len(linkname) > 100:
        records["linkpath"] = linkname
        linkname = linkname[:100]
    for key, value, width in (("uid", uid, 8), ("gid", gid, 8), ("size", size, 12), ("mtime", mtime, 12)):
        if value < 0 or value > _OCTAL_LIMITS[width]:
            records[key] = str(value).encode()
    uid, gid = (0 if "uid" in records else uid), (0 if "gid" in records else gid)
    size_field = 0 if "size" in records else size
    mtime_field = 0 if "mtime" in records else mtime
    for xname, xvalue in sorted((xattrs or {}).items()):
        records["SCHILY.xattr." + xname] = xvalue
    head = ustar_block(split[1], kind, mode, uid, gid, size_field, mtime_field, linkname, devmajor, devminor,
                       split[0])
    if not records:
        return head
    body = pax_records(records)
    pax_name = (b"PaxHeaders/" + split[1])[:100]
    return ustar_block(pax_name, b"x", 0o644, 0, 0, len(body), mtime_field) + body + pad(len(body)) + head


class TarWriter:
    """Buffers small members and writes big file data straight through."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        if len(data) >= FLUSH_AT:
            self.flush()
            self._out.write(data)
            return
        self._buf += data
        if len(self._buf) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks), then everything still buffered."""
        self._buf += bytes(2 * BLOCK)
        self.flush()
