"""write_diff: overlay upperdir -> layer tar; whiteouts both ways; determinism; a real overlayfs mount."""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from imagetool.errors import LayerError
from imagetool.layer import whiteout as wh
from imagetool.layer.diff import write_diff
from imagetool.layer.unpack import UnpackOptions, unpack
from tests.lib.hostile import entry, tar
from tests.lib.layertree import describe, gnu_untar, make_tree


def _upperdir(root: Path) -> Path:
    """A tree shaped like an overlay upperdir: files, a whiteout, an opaque directory, hardlinks, xattrs."""
    make_tree(root, files=120)
    wh.make_whiteout(str(root / "d0" / "deleted"))
    (root / "replaced").mkdir()
    (root / "replaced" / "fresh").write_bytes(b"new content")
    wh.mark_opaque(str(root / "replaced"))
    os.setxattr(root / "replaced", "trusted.overlay.origin", b"\x00junk")  # overlay bookkeeping: dropped
    for p in (root / "d0" / "deleted", root / "replaced" / "fresh", root / "replaced", root / "d0", root):
        os.utime(p, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    return root


def _tar_of(root: Path, timestamp: int | None = None) -> bytes:
    out = io.BytesIO()
    write_diff(root, out, timestamp)
    return out.getvalue()


def test_whiteouts_become_oci_whiteouts(tmp_path: Path) -> None:
    data = _tar_of(_upperdir(tmp_path / "upper"))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert members["d0/.wh.deleted"].isreg() and members["d0/.wh.deleted"].size == 0
    assert "d0/deleted" not in members
    assert members["replaced/.wh..wh..opq"].isreg()
    assert "trusted.overlay.origin" not in " ".join(k for m in members.values() for k in m.pax_headers)
    assert members["special/hard-b"].islnk() and members["special/hard-b"].linkname == "d0/hard-c"
    assert members["d0/hard-c"].isreg() and members["special/hard-a"].islnk()  # the first name carries the data
    assert members["special/xattr"].pax_headers["SCHILY.xattr.user.comment"] == "hello"
    names = [m for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))  # depth-first, sorted per directory


def test_round_trip_through_unpack(tmp_path: Path) -> None:
    """diff of an upperdir, unpacked as a snapshot (overlay whiteouts), is the same tree again."""
    upper = _upperdir(tmp_path / "upper")
    again = tmp_path / "again"
    again.mkdir()
    unpack(io.BytesIO(_tar_of(upper)), again, UnpackOptions(whiteouts="overlay"))
    os.removexattr(upper / "replaced", "trusted.overlay.origin")
    a, b = describe(upper), describe(again)
    assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert wh.is_opaque(str(again / "replaced")) and wh.is_whiteout(os.lstat(again / "d0" / "deleted"))
    # and the tar is byte-identical when made again from the copy: the diff is deterministic
    assert _tar_of(again) == _tar_of(upper)


def test_gnu_tar_reads_the_diff(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, files=150)
    (tmp_path / "layer.tar").write_bytes(_tar_of(src))
    gnu_untar(tmp_path / "layer.tar", tmp_path / "gnu")
    a, b = describe(src), describe(tmp_path / "gnu")
    assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_timestamp_clamps_mtimes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "new").write_bytes(b"x")
    (src / "old").write_bytes(b"y")
    os.utime(src / "old", (100, 100))
    with tarfile.open(fileobj=io.BytesIO(_tar_of(src, timestamp=1000))) as t:
        times = {m.name: m.mtime for m in t.getmembers()}
    assert times == {"new": 1000, "old": 100}
    assert _tar_of(src, timestamp=1000) == _tar_of(src, timestamp=1000)


def test_long_names_use_pax(tmp_path: Path) -> None:
    src = tmp_path / "src"
    deep = src / ("a" * 90) / ("b" * 90) / ("c" * 90)
    deep.mkdir(parents=True)
    (deep / ("f" * 200)).write_bytes(b"z")
    os.symlink("t" * 300, src / "longlink")
    for p in [*src.rglob("*"), src]:
        os.utime(p, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    out = tmp_path / "o"
    out.mkdir()
    unpack(io.BytesIO(_tar_of(src)), out, UnpackOptions(whiteouts="keep"))
    assert describe(src) == describe(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="files owned by other ids need root")
def test_big_ids_use_pax(tmp_path: Path) -> None:
    """Ids beyond the ustar fields' 2097151 go into PAX records and come back."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"z")
    os.chown(src / "f", 3_000_000, 2_500_000)
    with tarfile.open(fileobj=io.BytesIO(_tar_of(src))) as t:
        member = t.getmember("f")
        assert (member.uid, member.gid) == (3_000_000, 2_500_000)
        assert member.pax_headers.get("uid") == "3000000" and member.pax_headers.get("gid") == "2500000"
    for p in [*src.rglob("*"), src]:
        os.utime(p, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    out = tmp_path / "o"
    out.mkdir()
    unpack(io.BytesIO(_tar_of(src)), out, UnpackOptions(whiteouts="keep"))
    assert describe(src) == describe(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs needs root")
def test_real_overlay_upperdir(tmp_path: Path) -> None:
    """A snapshot as lowerdir, changes made through a real overlay mount, the upperdir diffed."""
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    base = tar(entry("etc/", b"5"), entry("etc/passwd", data=b"root:x:0:0\n"), entry("etc/gone", data=b"g"),
               entry("var/", b"5"), entry("var/cache/", b"5"), entry("var/cache/old", data=b"o"))
    unpack(io.BytesIO(base), lower)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        os.unlink(merged / "etc" / "gone")
        subprocess.run(["rm", "-rf", str(merged / "var" / "cache")], check=True)
        (merged / "var" / "cache").mkdir()
        (merged / "var" / "cache" / "new").write_bytes(b"n")
        (merged / "etc" / "passwd").write_bytes(b"root:x:0:0\nuser:x:1000:1000\n")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    layer = _tar_of(upper)
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        names = t.getnames()
    assert "etc/.wh.gone" in names and "var/cache/.wh..wh..opq" in names and "var/cache/new" in names
    # applying base + diff in order gives what the merged view showed
    flat = tmp_path / "flat"
    flat.mkdir()
    unpack(io.BytesIO(base), flat, UnpackOptions(whiteouts="apply"))
    unpack(io.BytesIO(layer), flat, UnpackOptions(whiteouts="apply"))
    assert sorted(os.listdir(flat / "etc")) == ["passwd"]
    assert os.listdir(flat / "var" / "cache") == ["new"]
    assert (flat / "etc" / "passwd").read_bytes().endswith(b"user:x:1000:1000\n")
    assert stat.S_ISDIR(os.lstat(flat / "var").st_mode)


def _capable_file(root: Path) -> Path:
    """A file with a real file capability (setcap) and a user.* xattr."""
    root.mkdir(exist_ok=True)
    target = root / "ping"
    target.write_bytes(b"\x7fELF not really")
    subprocess.run(["setcap", "cap_net_raw+ep", str(target)], check=True)
    os.setxattr(target, "user.note", b"hello")
    return target


def _xattrs_in(data: bytes, name: str) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        member = t.getmember(name)
        return {k: v for k, v in member.pax_headers.items() if k.startswith("SCHILY.xattr.")}


def test_xattrs_and_file_capabilities_are_kept(tmp_path: Path) -> None:
    _capable_file(tmp_path / "tree")
    found = _xattrs_in(_tar_of(tmp_path / "tree"), "ping")
    assert found["SCHILY.xattr.user.note"] == "hello"
    assert "SCHILY.xattr.security.capability" in found


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO, errno.ERANGE, errno.EPERM])
def test_an_xattr_that_cannot_be_read_fails_the_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      code: int) -> None:
    """Dropping security.capability because getxattr failed would change what the image may do."""
    _capable_file(tmp_path / "tree")
    real = os.getxattr

    def failing(path, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "security.capability":
            raise OSError(code, os.strerror(code))
        return real(path, name, *args, **kwargs)

    monkeypatch.setattr(os, "getxattr", failing)
    with pytest.raises(LayerError, match="security.capability"):
        _tar_of(tmp_path / "tree")


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO])
def test_a_failing_listxattr_fails_the_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    _capable_file(tmp_path / "tree")

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "listxattr", failing)
    with pytest.raises(LayerError, match="xattrs of"):
        _tar_of(tmp_path / "tree")


@pytest.mark.parametrize("code", [errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA])
def test_unsupported_or_vanished_xattrs_are_no_xattrs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      code: int) -> None:
    """A filesystem without xattrs, or one removed between listxattr and getxattr, is not an error."""
    _capable_file(tmp_path / "tree")
    real = os.getxattr

    def vanished(path, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "user.note":
            raise OSError(code, os.strerror(code))
        return real(path, name, *args, **kwargs)

    monkeypatch.setattr(os, "getxattr", vanished)
    found = _xattrs_in(_tar_of(tmp_path / "tree"), "ping")
    assert "SCHILY.xattr.user.note" not in found and "SCHILY.xattr.security.capability" in found

    def unsupported(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "listxattr", unsupported)
    assert _xattrs_in(_tar_of(tmp_path / "tree"), "ping") == {}
