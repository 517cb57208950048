"""ADD of a local tar: members land under the destination as in a chroot there, whatever their names say.

Docker unpacks an ADDed archive inside a chroot at the destination directory, so absolute
names, `..` and links such as `up -> ..` resolve under it; an entry named `.` is the
destination itself; a member replaces what is in its way unless both are directories.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.build.test_fidelity import BASE, build, buildah_with_base, rootfs
from tests.lib.buildah import fs_tree
from tests.lib.images import busybox_image


def _tar(path: Path, members: list[tuple[str, str, bytes | str]]) -> None:
    """(name, kind, content): kind f (file, mode 0644), x (file, mode 04755), d (dir), l (symlink to content)."""
    with tarfile.open(path, "w") as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, str(content)
                tar.addfile(info)
            else:
                data = content if isinstance(content, bytes) else content.encode()
                info.size, info.mode = len(data), 0o4755 if kind == "x" else 0o644
                tar.addfile(info, io.BytesIO(data))


def test_archive_members_never_leave_the_destination(tmp_path: Path, local_store: Path, base: Path) -> None:
    """An absolute member name, `..`, and links to `..` and `/` all stay under the ADD's destination:
    nothing is written on the building machine, and the image holds them where a chroot puts them."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    host_victim = tmp_path / "written-on-the-host"
    _tar(ctx / "evil.tar", [
        (str(host_victim), "f", "absolute\n"),
        ("../../climbed", "f", "climbed\n"),
        ("up", "l", ".."),
        ("up/etc/myfile", "f", "through up\n"),
        ("root", "l", "/"),
        ("root/through-root", "f", "through root\n"),
        ("setuid", "x", "kept\n"),
    ])
    build(ctx, f"FROM {BASE}\nADD evil.tar /dest\n", "evil")
    assert not host_victim.exists()
    tree = fs_tree(rootfs(local_store, "evil", tmp_path / "b"))
    assert tree[f"/dest{host_victim}"][5] == b"absolute\n"
    assert tree["/dest/climbed"][5] == b"climbed\n"
    assert tree["/dest/up"][:1] == ("l",) and tree["/dest/up"][4] == ".."
    assert tree["/dest/etc/myfile"][5] == b"through up\n"
    assert tree["/dest/through-root"][5] == b"through root\n"
    assert tree["/dest/setuid"][1] == 0o4755
    for outside in ("/climbed", "/etc/myfile", "/through-root"):
        assert outside not in tree


def test_archive_member_replaces_a_directory_and_dot_is_skipped(tmp_path: Path, local_store: Path,
                                                               base: Path) -> None:
    """A tar with an empty-named entry (the destination itself) and a file where the image has a
    directory: the entry is skipped and the file replaces the directory (buildah agrees)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _tar(ctx / "test.tar", [("", "f", ""), ("./", "d", ""), ("app/content/file", "f", "content\n"),
                            ("fileone", "f", "now a file\n")])
    dockerfile = f"FROM {BASE}\nRUN mkdir /fileone && touch /fileone/inside\nADD test.tar /\n"
    build(ctx, dockerfile, "dirnotdir")
    ours = fs_tree(rootfs(local_store, "dirnotdir", tmp_path / "b"))
    assert ours["/fileone"][0] == "f" and ours["/fileone"][5] == b"now a file\n"
    assert "/fileone/inside" not in ours
    buildah = buildah_with_base(tmp_path, base)
    buildah.bud(ctx, ctx / "Dockerfile", "dirnotdir")
    theirs = buildah.tree("dirnotdir")
    for path in ("/fileone", "/app/content/file"):
        assert ours[path] == theirs[path]


def test_archive_unpacks_rootless_with_the_archives_owners(rootless_user) -> None:  # type: ignore[no-untyped-def]
    """Rootless, the archive is unpacked in the store's user namespace: its owners are container ids,
    its `up -> ..` link still stays under the destination."""
    user = rootless_user
    work = user.mkdtemp()
    layout, ctx = work / "base", work / "ctx"
    busybox_image(layout, "latest")
    ctx.mkdir()
    with tarfile.open(ctx / "owned.tar", "w") as tar:
        info = tarfile.TarInfo("owned")
        info.size, info.uid, info.gid = 3, 1234, 5678
        tar.addfile(info, io.BytesIO(b"ok\n"))
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, ".."
        tar.addfile(link)
        inner = tarfile.TarInfo("up/inner")
        inner.size = 3
        tar.addfile(inner, io.BytesIO(b"in\n"))
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nADD owned.tar /dest/\n")
    user.give(work)
    env = {"IMAGETOOL_STORE": str(work / "store")}
    user.imagetool("copy", f"oci:{layout}:latest", BASE, env=env)
    user.imagetool("build", "-t", "owned", str(ctx), env=env)
    out = user.imagetool("run", "--rm", "owned", "stat", "-c", "%n %u:%g", "/dest/owned", "/dest/inner",
                         env=env).stdout
    assert out == "/dest/owned 1234:5678\n/dest/inner 0:0\n"
