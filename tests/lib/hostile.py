"""A corpus of hostile and broken layer tars, built byte by byte on the spot.

Each Case is one archive and what a safe unpacker must do with it: "refused" (a typed
error, one line) or "neutralised" (unpacked, but nothing lands outside the target and
the hostile part has no effect). `sentinel` is a directory beside the target that the
archives aim at; tests assert it is untouched afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagetool.errors import LayerError, UnsafeContent
from imagetool.layer import tarwriter as tw

END = bytes(1024)


def entry(name: str | bytes, kind: bytes = b"0", data: bytes = b"", mode: int = 0o644, linkname: str = "",
          pax: dict[str, bytes] | None = None, devmajor: int = 0, devminor: int = 0) -> bytes:
    """One member (with an optional PAX header of raw records) as bytes."""
    raw = name.encode() if isinstance(name, str) else name
    out = b""
    if pax:
        body = tw.pax_records(pax)
        out += tw.ustar_block(b"PaxHeaders/x", b"x", size=len(body)) + body + tw.pad(len(body))
    head = tw.ustar_block(raw[:100], kind, mode, 0, 0, len(data), 1_600_000_000, linkname.encode()[:100],
                          devmajor, devminor)
    return out + head + data + tw.pad(len(data))


def gnu_long(kind: bytes, value: bytes, declared: int | None = None) -> bytes:
    """A GNU 'L'/'K' long name header; `declared` lies about its size."""
    size = len(value) + 1 if declared is None else declared
    data = value + b"\0"
    return tw.ustar_block(b"././@LongLink", kind, size=size) + data + tw.pad(len(data))


def tar(*members: bytes, end: bool = True) -> bytes:
    return b"".join(members) + (END if end else b"")


@dataclass
class Case:
    name: str
    data: bytes
    outcome: str                     # "refused" or "neutralised"
    error: type[Exception] | None = None
    whiteouts: str = "overlay"
    devices: bool | None = None
    #: names (relative to the target) that must exist afterwards, when neutralised
    expect: tuple[str, ...] = ()


def corpus(sentinel: Path) -> list[Case]:
    """The hostile archives; `sentinel` is the absolute path of the directory they try to reach."""
    s = str(sentinel)
    secret = f"{s}/secret"
    good = entry("ok.txt", data=b"fine\n")
    cases = [
        Case("dotdot-file", tar(good, entry("../escaped", data=b"x")), "refused", UnsafeContent),
        Case("dotdot-deep", tar(entry("a/", b"5"), entry("a/../../escaped", data=b"x")), "refused",
             UnsafeContent),
        Case("dotdot-into-sentinel", tar(entry(f"../{sentinel.name}/pwned", data=b"x")), "refused",
             UnsafeContent),
        Case("absolute-path", tar(entry(f"{s}/pwned", data=b"x")), "neutralised",
             expect=(f"{s.lstrip('/')}/pwned",)),
        Case("symlink-then-write-relative",
             tar(entry("link", b"2", linkname=f"../../../{sentinel.name}"), entry("link/pwned", data=b"x")),
             "neutralised", expect=(f"{sentinel.name}/pwned",)),
        Case("symlink-then-write-absolute",
             tar(entry("link", b"2", linkname=s), entry("link/pwned", data=b"x")),
             "neutralised", expect=(f"{s.lstrip('/')}/pwned",)),
        Case("symlink-then-overwrite",
             tar(entry("f", b"2", linkname=secret), entry("f", data=b"overwritten")),
             "neutralised", expect=("f",)),
        Case("dir-replaced-by-symlink-then-write",
             tar(entry("d/", b"5"), entry("d", b"2", linkname=s), entry("d/pwned", data=b"x")),
             "neutralised", expect=(f"{s.lstrip('/')}/pwned",)),
        Case("hardlink-dotdot", tar(entry("hl", b"1", linkname=f"../{sentinel.name}/secret")), "refused",
             UnsafeContent),
        Case("hardlink-absolute", tar(entry("hl", b"1", linkname=secret)), "refused", LayerError),
        Case("hardlink-through-symlink",
             tar(entry("ln", b"2", linkname=s), entry("hl", b"1", linkname="ln/secret")), "refused",
             LayerError),
        Case("hardlink-pax-linkpath",
             tar(entry("hl", b"1", linkname="harmless", pax={"linkpath": b"../../" + secret.encode()})),
             "refused", UnsafeContent),
        Case("whiteout-dotdot", tar(entry(f"../{sentinel.name}/.wh.secret")), "refused", UnsafeContent),
        Case("whiteout-of-dotdot", tar(entry("a/", b"5"), entry("a/.wh..."), entry("b", data=b"")), "refused",
             UnsafeContent),
        Case("whiteout-through-symlink",
             tar(entry("ln", b"2", linkname=s), entry("ln/.wh.secret")), "neutralised", whiteouts="apply",
             expect=("ln",)),
        Case("opaque-through-symlink",
             tar(entry("ln", b"2", linkname=s), entry("ln/.wh..wh..opq")), "neutralised", whiteouts="apply",
             expect=("ln",)),
        Case("device-node-unprivileged", tar(entry("dev/null", b"3", mode=0o666, devmajor=1, devminor=3), good),
             "neutralised", devices=False, expect=("ok.txt",)),
        Case("pax-path-escape", tar(entry("innocent", data=b"x", pax={"path": b"../../escaped"})), "refused",
             UnsafeContent),
        Case("pax-path-nul", tar(entry("innocent", data=b"x", pax={"path": b"a\0b"})), "refused",
             UnsafeContent),
        Case("gnu-longname-escape", tar(gnu_long(b"L", b"../" * 60 + b"escaped"), entry("short", data=b"x")),
             "refused", UnsafeContent),
        Case("gnu-longlink-hardlink-escape",
             tar(gnu_long(b"K", b"../" * 60 + secret.encode()), entry("hl", b"1", linkname="x")),
             "refused", UnsafeContent),
        Case("huge-pax-header", tar(tw.ustar_block(b"PaxHeaders/x", b"x", size=3 << 30)), "refused",
             UnsafeContent),
        Case("huge-gnu-longname", tar(gnu_long(b"L", b"a" * 10, declared=200 << 20)), "refused", UnsafeContent),
        Case("header-chain", tar(*[entry("x", pax={"comment": b"y"})[:-512] for _ in range(20)]), "refused",
             UnsafeContent),
        Case("symlink-loop",
             tar(entry("a", b"2", linkname="b"), entry("b", b"2", linkname="a"), entry("a/x", data=b"x")),
             "refused", UnsafeContent),
        Case("truncated-data", tar(entry("big", data=b"z" * 5000))[:1536], "refused", LayerError),
        Case("truncated-header", tar(good, entry("next", data=b"x"))[:1024 + 300], "refused", LayerError),
        Case("no-end-marker", tar(good, end=False), "refused", LayerError),
        Case("bad-checksum", tar(good[:148] + b"0000000\0" + good[156:]), "refused", LayerError),
        Case("sparse-member", tar(entry("sparse", b"S", data=b"x")), "refused", LayerError),
        Case("file-named-root", tar(entry("./", b"0", data=b"x")), "refused", UnsafeContent),
        Case("overlay-xattr-injection",
             tar(entry("d/", b"5", pax={"SCHILY.xattr.trusted.overlay.opaque": b"y",
                                        "SCHILY.xattr.trusted.overlay.redirect": b"/etc",
                                        "SCHILY.xattr.user.overlay.opaque": b"y"}), good),
             "neutralised", expect=("d", "ok.txt")),
        Case("hardlink-to-directory", tar(entry("d/", b"5"), entry("hl", b"1", linkname="d")), "refused",
             UnsafeContent),
        Case("not-a-tar", b"<html>not found</html>" + bytes(2048), "refused", LayerError),
    ]
    return cases
