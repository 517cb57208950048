"""A remote build context is unpacked by the rules of tarfile's "data" filter, on Pythons with and without it.

Debian 12's python3 (3.11.2) has no extraction filters; rootless builds run it, so a tarball context
fetched there is checked member by member by imagetool itself.
"""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from imagetool.build.datafilter import unpack_checked, unpack_data
from tests.build.test_fidelity import BASE
from tests.lib.httpdir import serve_directory
from tests.lib.images import busybox_image
from tests.lib.rootless import PYTHON

UNPACKERS = [pytest.param(unpack_data, id="data-filter"), pytest.param(unpack_checked, id="checked")]


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


HOSTILE = {
    "dotdot": [(_member("../outside/x"), b"x")],
    "absolute-link": [(_member("etc", tarfile.SYMTYPE, "/etc"), b"")],
    "link-up": [(_member("up", tarfile.SYMTYPE, "../outside"), b"")],
    "hard-link-up": [(_member("h", tarfile.LNKTYPE, "../outside/x"), b"")],
    "device": [(_member("dev", tarfile.CHRTYPE), b"")],
}


@pytest.mark.parametrize("unpack", UNPACKERS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_member_is_refused_and_nothing_lands_outside(
        tmp_path: Path, unpack: Callable[[tarfile.TarFile, Path], None], case: str) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "x").write_text("kept\n")
    archive = _tar(tmp_path / "a.tar", *HOSTILE[case])
    with tarfile.open(archive) as tar, pytest.raises(tarfile.TarError):
        unpack(tar, dest)
    assert [p.name for p in outside.iterdir()] == ["x"] and (outside / "x").read_text() == "kept\n"
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("unpack", UNPACKERS)
def test_a_file_through_an_unpacked_link_that_leads_out_is_refused(
        tmp_path: Path, unpack: Callable[[tarfile.TarFile, Path], None]) -> None:
    """A link that stays inside is fine; a later member whose path passes through a link is judged where it
    really lands."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").mkdir()
    (dest / "sub" / "esc").symlink_to(outside)  # planted, as a link unpacked earlier would be
    archive = _tar(tmp_path / "a.tar", (_member("sub/esc/planted"), b"no\n"))
    with tarfile.open(archive) as tar, pytest.raises(tarfile.TarError):
        unpack(tar, dest)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("unpack", UNPACKERS)
def test_an_ordinary_context_unpacks_with_set_id_bits_dropped(
        tmp_path: Path, unpack: Callable[[tarfile.TarFile, Path], None]) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    archive = _tar(tmp_path / "a.tar",
                   (_member("/Dockerfile"), b"FROM scratch\n"),  # a leading slash is dropped
                   (_member("bin", tarfile.DIRTYPE, mode=0o755), b""),
                   (_member("bin/tool", mode=0o4755), b"#!/bin/sh\n"),
                   (_member("bin/alias", tarfile.SYMTYPE, "tool"), b""),
                   (_member("notes", mode=0o666), b"n\n"))
    with tarfile.open(archive) as tar:
        unpack(tar, dest)
    assert (dest / "Dockerfile").read_text() == "FROM scratch\n"
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    assert (dest / "bin" / "alias").readlink() == Path("tool")
    assert stat.S_IMODE((dest / "notes").stat().st_mode) == 0o644


def test_rootless_build_of_a_tarball_context_on_debians_python(rootless_user, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The rootless user runs Debian's python3 (no extraction filters): the context still unpacks, and a
    hostile one is refused in one line."""
    user = rootless_user
    work = user.mkdtemp()
    layout = work / "base"
    busybox_image(layout, "latest")
    served = tmp_path / "www"
    served.mkdir()
    dockerfile = f"FROM {BASE}\nCOPY a.txt /a.txt\n".encode()
    _tar(served / "ctx.tar", (_member("Dockerfile"), dockerfile), (_member("a.txt"), b"from afar\n"))
    _tar(served / "bad.tar", (_member("Dockerfile"), dockerfile), (_member("../../escape"), b"x"))
    user.give(work)
    env = {"IMAGETOOL_STORE": str(work / "store")}
    with serve_directory(served) as url:
        assert "data_filter" not in user.run([str(PYTHON), "-c", "import tarfile; print(dir(tarfile))"]).stdout
        user.imagetool("copy", f"oci:{layout}:latest", BASE, env=env)
        user.imagetool("build", "-t", "afar", f"{url}/ctx.tar", env=env)
        assert user.imagetool("run", "--rm", "afar", "cat", "/a.txt", env=env).stdout == "from afar\n"
        bad = user.imagetool("build", "-t", "bad", f"{url}/bad.tar", env=env, check=False)
        assert bad.returncode != 0
        assert "unpacking the build context" in bad.stderr and "outside the destination" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
