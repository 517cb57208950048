"""COPY into step upperdirs gives the filesystem buildah 1.28 builds from the same Dockerfile."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagetool.build.cache import base_key
from imagetool.build.context import BuildContext
from imagetool.build.copier import Copier
from imagetool.build.dockerfile import parse, parse_file
from imagetool.build.rootview import RootView, resolve_owner
from imagetool.build.stages import plan
from imagetool.build.stagewalker import CopyWork, StageResult, StageWalker
from imagetool.errors import BuildError
from tests.lib.buildah import Buildah

CASE = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles" / "copy-semantics"


def make_context(root: Path) -> Path:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "file").write_text("f\n")
    os.chmod(root / "file", 0o600)
    (root / "dir" / "g").write_text("g\n")
    (root / "dir" / "sub" / "h").write_text("h\n")
    os.chmod(root / "dir" / "sub", 0o751)
    os.symlink("g", root / "dir" / "link")
    os.link(root / "dir" / "g", root / "dir" / "hard")
    os.symlink("file", root / "link-to-file")
    (root / "one.txt").write_text("1")
    (root / "two.txt").write_text("2")
    (root / "skip.txt").write_text("ignored")
    (root / ".dockerignore").write_text("skip.txt\n")
    (root / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (root / "group").write_text("root:x:0:\nstaff:x:50:\napp:x:1001:\n")
    return root


def tree(view: RootView, path: str = "/") -> dict[str, tuple]:  # type: ignore[type-arg]
    out = {}
    for name in view.listdir(path):
        child = f"{path.rstrip('/')}/{name}"
        disk, st = view.locate(child)  # type: ignore[misc]
        mode = st.st_mode
        kind = "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "f"
        out[child] = (kind, stat.S_IMODE(mode) if kind != "l" else 0o777, st.st_uid, st.st_gid,
                      os.readlink(disk) if kind == "l" else "", disk.read_bytes() if kind == "f" else b"")
        if kind == "d":
            out.update(tree(view, child))
    return out


def build_ours(dockerfile: Path, context: Path, work: Path, target: str | None = None) -> RootView:
    p = plan(parse_file(dockerfile), target=target)
    ctx = BuildContext(context, dockerfile)
    results: dict[int, StageResult] = {}
    layers: dict[int, list[Path]] = {}
    for n in p.needed:
        st = p.stages[n]
        own: list[Path] = list(layers[st.base_stage]) if st.base_stage is not None else []
        walker = StageWalker(p, st, ctx, base_key(st.base, None), None, results)
        for step in walker:
            if not isinstance(step.work, CopyWork):
                continue
            upper = work / f"s{n}-{step.number}"
            upper.mkdir()
            source = RootView(list(reversed(layers[step.work.from_stage]))) \
                if step.work.from_stage is not None else None
            Copier(upper, list(reversed(own))).copy(step.work, ctx, source)
            own.append(upper)
        layers[n] = own
        results[n] = walker.result()
    return RootView(list(reversed(layers[p.target])))


@pytest.mark.parametrize("target", ["base", None])
def test_copy_matches_buildah(tmp_path: Path, target: str | None) -> None:
    ctx = make_context(tmp_path / "ctx")
    ours = tree(build_ours(CASE / "Dockerfile", ctx, tmp_path, target))
    buildah = Buildah(tmp_path / "buildah")
    buildah.bud(ctx, CASE / "Dockerfile", "t", "--layers=false", *(["--target", target] if target else []))
    theirs = buildah.tree("t")
    assert ours == theirs
    if target == "base":
        assert ours["/named"][2:4] == (1000, 50) and ours["/named-user-only"][2:4] == (1000, 1001)
        assert ours["/cdir/x/link"][4] == "g" and ours["/followed"][5] == b"f\n"


def test_hardlinks_stay_hardlinks(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    (tmp_path / "up").mkdir()
    p = plan(parse("FROM scratch\nCOPY dir /d/\n"))
    step = list(StageWalker(p, p.stages[0], BuildContext(ctx), "k", None))[0]
    Copier(tmp_path / "up", []).copy(step.work, BuildContext(ctx))
    assert os.stat(tmp_path / "up" / "d" / "g").st_ino == os.stat(tmp_path / "up" / "d" / "hard").st_ino


def test_copy_up_and_whiteouts_in_lower_layers(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    os.chmod(lower / "etc", 0o700)
    os.chown(lower / "etc", 3, 4)
    (lower / "gone").mkdir()
    (lower / "usr" / "bin").mkdir(parents=True)
    os.symlink("usr/bin", lower / "bin")
    top = tmp_path / "top"
    top.mkdir()
    os.mknod(top / "gone", stat.S_IFCHR | 0o000, 0)          # an overlay whiteout hides /gone
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "f").write_text("x")
    up = tmp_path / "up"
    up.mkdir()
    c = Copier(up, [top, lower])
    assert not c.view.is_dir("/gone") and c.view.is_dir("/etc") and c.view.resolve("/bin/x") == "/usr/bin/x"
    c.copy(CopyWork(("f",), "/etc/"), BuildContext(tmp_path / "ctx"))
    c.copy(CopyWork(("f",), "/bin/"), BuildContext(tmp_path / "ctx"))
    c.copy(CopyWork(("f",), "/gone/"), BuildContext(tmp_path / "ctx"))
    st = os.stat(up / "etc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 3, 4)   # copied up as it was
    assert (up / "usr" / "bin" / "f").is_file() and not (up / "bin").exists()  # through the image's symlink
    assert (up / "gone").is_dir() and (up / "gone" / "f").is_file()          # the whiteout was replaced


def test_chown_names_must_exist(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:10:20::/:/bin/sh\n")
    view = RootView([tmp_path])
    assert resolve_owner(view, "app") == (10, 20) and resolve_owner(view, "7") == (7, 7)
    assert resolve_owner(view, "app:3") == (10, 3)
    with pytest.raises(BuildError, match="no user 'nobody'"):
        resolve_owner(view, "nobody")
    with pytest.raises(BuildError, match="no group 'staff'"):
        resolve_owner(view, "app:staff")
