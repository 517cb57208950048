"""Builder corners where imagetool followed neither Docker nor buildah, built for real.

Each test builds a small Dockerfile of its own on a busybox base with `imagetool build` and
looks at the image it made; where buildah 1.28 gives what Docker documents, its tree is the
reference too.
"""

from __future__ import annotations

import os
from pathlib import Path


from imagetool.build.arguments import heredoc_marker
from imagetool.build.dockerfile import parse
from tests.build.test_build import config_of
from tests.lib.buildah import Buildah, fs_tree
from tests.lib.bundles import umoci_unpack
from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.images import busybox_image

BASE = "localhost/busybox:base"
#: empty mountpoints buildah 1.28 leaves in RUN layers
BUILDAH_STUBS = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run"}


def buildah_with_base(tmp_path: Path, layout: Path) -> Buildah:
    buildah = Buildah(tmp_path / "buildah")
    image_id = tool([*buildah.argv, "pull", "-q", f"oci:{layout}:latest"]).stdout.strip()
    tool([*buildah.argv, "tag", image_id, BASE])
    return buildah


def build(ctx: Path, dockerfile: str, tag: str, *extra: str) -> str:
    (ctx / "Dockerfile").write_text(dockerfile)
    return imagetool("build", *extra, "-t", tag, str(ctx)).stdout


def rootfs(store: Path, tag: str, where: Path) -> Path:
    return umoci_unpack(store, f"localhost/{tag}:latest", where) / "rootfs"


def layer_count(store: Path, tag: str) -> int:
    return len(config_of(store, f"localhost/{tag}:latest")["rootfs"]["diff_ids"])


# -- 1. a symlink named as a COPY source


def test_copied_symlink_keeps_the_name_the_copy_gave(tmp_path: Path, local_store: Path, base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.tar.gz").write_bytes(b"not really an archive\n")
    os.symlink("file.tar.gz", ctx / "file-link.tar.gz")
    (ctx / "real.txt").write_text("real\n")
    os.symlink("real.txt", ctx / "alias.txt")
    dockerfile = (f"FROM {BASE} AS base\nFROM {BASE}\nCOPY --from=base /bin/ls /test/\n"
                  "COPY file-link.tar.gz /\nCOPY alias.* /globbed/\nCOPY --from=base /bin/c?t /test/\n")
    build(ctx, dockerfile, "links")
    ours = fs_tree(rootfs(local_store, "links", tmp_path / "b"))
    busybox = Path("/bin/busybox").read_bytes()
    assert ours["/test/ls"][0] == "f" and ours["/test/ls"][5] == busybox   # the link followed for content
    assert ours["/test/cat"][5] == busybox
    assert ours["/file-link.tar.gz"][:1] == ("f",) and ours["/file-link.tar.gz"][5] == b"not really an archive\n"
    assert ours["/globbed/alias.txt"][5] == b"real\n"
    for wrong in ("/test/busybox", "/file.tar.gz", "/globbed/real.txt"):
        assert wrong not in ours
    buildah = buildah_with_base(tmp_path, base)
    buildah.bud(ctx, ctx / "Dockerfile", "links")
    theirs = buildah.tree("links")
    copied = [p for p in ours if p.startswith(("/test", "/globbed", "/file"))]
    assert {p: ours[p] for p in copied} == {p: theirs.get(p) for p in copied}


# -- 2. and 3. WORKDIR makes its directory


def test_workdir_is_a_directory_before_a_copy_into_it(tmp_path: Path, local_store: Path) -> None:
    """`COPY f /subdir` after `WORKDIR /subdir` copies into the directory: Docker makes WORKDIR's
    directory at once, even FROM scratch, and so does buildah."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("f\n")
    build(ctx, "FROM scratch\nWORKDIR /subdir\nCOPY f /subdir\n", "wd")
    tree = fs_tree(rootfs(local_store, "wd", tmp_path / "b"))
    assert tree["/subdir"][:2] == ("d", 0o755) and tree["/subdir/f"][5] == b"f\n"
    buildah = Buildah(tmp_path / "buildah")
    buildah.bud(ctx, ctx / "Dockerfile", "wd")
    assert tree == buildah.tree("wd")


def test_workdir_is_made_for_the_user_and_only_when_missing(tmp_path: Path, local_store: Path,
                                                             base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    out = build(ctx, f"FROM {BASE}\nWORKDIR /tmp\nUSER nobody\nWORKDIR /home/nobody/work\n"
                     "RUN pwd > where\nWORKDIR /\n", "wd")
    assert "/home/nobody/work" in out
    tree = fs_tree(rootfs(local_store, "wd", tmp_path / "b"))
    assert tree["/home/nobody/work"][:4] == ("d", 0o755, 65534, 65534)   # BuildKit: owned by USER
    assert tree["/home"][2:4] == (65534, 65534)
    assert tree["/home/nobody/work/where"][5] == b"/home/nobody/work\n"
    # the base layer, the one WORKDIR that made something, the RUN: /tmp and / existed already
    assert layer_count(local_store, "wd") == 3
    config = config_of(local_store, "localhost/wd:latest")
    assert [h.get("empty_layer", False) for h in config["history"]][-5:] == [True, True, False, False, True]
    buildah = buildah_with_base(tmp_path, base)
    buildah.bud(ctx, ctx / "Dockerfile", "wd")
    assert tree == {p: e for p, e in buildah.tree("wd").items() if p not in BUILDAH_STUBS}


def test_workdir_through_a_dangling_symlink(tmp_path: Path, local_store: Path, base: Path) -> None:
    """The link is resolved inside the root and its target made; the link stays a link (as buildah)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("f\n")
    dockerfile = (f"FROM {BASE}\nRUN mkdir -p /var/lib && ln -s /var/lib/tempest /tempest\n"
                  "WORKDIR /tempest/lower\nRUN touch made-here\nCOPY f ./f\nCOPY f /tempest/g\n")
    build(ctx, dockerfile, "wdlink")
    ours = fs_tree(rootfs(local_store, "wdlink", tmp_path / "b"))
    assert ours["/tempest"][0] == "l" and ours["/tempest"][4] == "/var/lib/tempest"
    assert ours["/var/lib/tempest/lower/made-here"][0] == "f"
    assert ours["/var/lib/tempest/lower/f"][5] == b"f\n" and ours["/var/lib/tempest/g"][5] == b"f\n"
    buildah = buildah_with_base(tmp_path, base)
    buildah.bud(ctx, ctx / "Dockerfile", "wdlink")
    theirs = buildah.tree("wdlink")
    mine = {p: e for p, e in ours.items() if p.startswith(("/var", "/tempest"))}
    assert mine == {p: e for p, e in theirs.items() if p.startswith(("/var", "/tempest"))}


# -- 4. several sources, some globs matching nothing


def test_a_glob_may_match_nothing_when_another_source_matches(tmp_path: Path, local_store: Path,
                                                               base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    (ctx / "b.txt").write_text("b")
    build(ctx, f"FROM {BASE} AS src\nFROM {BASE}\nCOPY *foo *.txt /dir/\n"
               "COPY --from=src /nothing* /bin/sh /fromstage/\n", "globs")
    tree = fs_tree(rootfs(local_store, "globs", tmp_path / "b"))
    assert {p for p in tree if p.startswith("/dir/")} == {"/dir/a.txt", "/dir/b.txt"}
    assert {p for p in tree if p.startswith("/fromstage/")} == {"/fromstage/sh"}
    for dockerfile, what in ((f"FROM {BASE}\nCOPY *foo *bar /dir/\n", "*foo *bar"),
                             (f"FROM {BASE}\nCOPY missing.txt *.txt /dir/\n", "missing.txt"),
                             (f"FROM {BASE} AS src\nFROM {BASE}\nCOPY --from=src /nothing* /dir/\n", "/nothing*")):
        (ctx / "Dockerfile").write_text(dockerfile)
        line = one_line_error(imagetool("build", "-t", "fails", str(ctx), check=False))
        assert what in line and ("no source file" in line or "not found" in line or "no such file" in line)


# -- 5. SHELL that repeats the default


def test_shell_is_recorded_as_written(tmp_path: Path, local_store: Path, base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    build(ctx, f'FROM {BASE}\nSHELL ["/bin/sh", "-c"]\n', "shell", "--format", "docker")
    assert config_of(local_store, "localhost/shell:latest")["config"]["Shell"] == ["/bin/sh", "-c"]
    build(ctx, "FROM localhost/shell:latest\nENV X=1\n", "child", "--format", "docker")
    assert config_of(local_store, "localhost/child:latest")["config"]["Shell"] == ["/bin/sh", "-c"]
    build(ctx, f"FROM {BASE}\nENV X=1\n", "noshell", "--format", "docker")
    assert "Shell" not in config_of(local_store, "localhost/noshell:latest")["config"]
    buildah = buildah_with_base(tmp_path, base)
    (ctx / "Dockerfile").write_text(f'FROM {BASE}\nSHELL ["/bin/sh", "-c"]\n')
    buildah.bud(ctx, ctx / "Dockerfile", "shell", "--format", "docker")
    assert buildah.image("shell")["Docker"]["config"]["Shell"] == ["/bin/sh", "-c"]


# -- 6. heredocs on other file descriptors


def test_heredoc_marker_may_name_a_file_descriptor() -> None:
    assert heredoc_marker("5<<FILE1") == ("FILE1", True, False)
    assert heredoc_marker("12<<-'END'") == ("END", False, True)
    assert heredoc_marker("x<<EOF") is None
    df = parse("FROM busybox\nRUN cat /proc/self/fd/5 5<<ONE 6<<TWO > /out\none\nONE\ntwo\nTWO\nRUN true\n")
    run = df.instructions[1]
    assert [h.name for h in run.heredocs] == ["ONE", "TWO"]  # type: ignore[union-attr]
    assert df.instructions[2].line == 7


def test_heredocs_on_file_descriptors_reach_the_command(tmp_path: Path, local_store: Path, base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    build(ctx, f"FROM {BASE}\nRUN cat /proc/self/fd/5 /proc/self/fd/6 5<<FILE1 6<<FILE2 > /out\n"
               "first\nFILE1\nsecond\nFILE2\n"
               "RUN 5<<in cat /proc/self/fd/5 | cat - /proc/self/fd/7 7<<more > /out2\nthird\nin\nfourth\nmore\n",
          "fds")
    root = rootfs(local_store, "fds", tmp_path / "b")
    assert (root / "out").read_text() == "first\nsecond\n"
    assert (root / "out2").read_text() == "third\nfourth\n"


# -- 7. a stage name given twice


def test_duplicate_stage_names_build_with_the_latest_meaning(tmp_path: Path, local_store: Path,
                                                             base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    out = build(ctx, f"FROM {BASE} AS x\nRUN echo first > /which\nFROM x AS mid\nRUN cp /which /mid\n"
                     f"FROM {BASE} AS x\nRUN echo second > /which\n"
                     f"FROM {BASE}\nCOPY --from=x /which /which\nCOPY --from=mid /mid /mid\n", "dup")
    assert "duplicate stage name 'x'" in out
    root = rootfs(local_store, "dup", tmp_path / "b")
    assert (root / "which").read_text() == "second\n" and (root / "mid").read_text() == "first\n"
    imagetool("build", "--target", "x", "-t", "dupx", str(ctx))
    assert (rootfs(local_store, "dupx", tmp_path / "c") / "which").read_text() == "second\n"


# -- 8. FROM <index>, and the z, Z, U, O flags


def test_from_a_stage_index(tmp_path: Path, local_store: Path, base: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    build(ctx, f"FROM {BASE}\nRUN echo zero > /out\nFROM 0\nRUN echo one >> /out\n"
               f"FROM {BASE}\nCOPY --from=1 /out /out\n", "byindex")
    assert (rootfs(local_store, "byindex", tmp_path / "b") / "out").read_text() == "zero\none\n"
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nFROM 1\n")
    assert "FROM 1: refers to the current or a later build stage" in \
        one_line_error(imagetool("build", "-t", "bad", str(ctx), check=False))


def test_mount_flags(tmp_path: Path, local_store: Path, base: Path) -> None:
    """z/Z are accepted (no SELinux here); U shows the content owned by the RUN user without chowning
    the context; O makes a read-only source writable into a throwaway layer."""
    assert not os.path.exists("/sys/fs/selinux/enforce")
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "y").write_text("y\n")
    dockerfile = (f"FROM {BASE} AS src\nRUN mkdir /data && echo s > /data/s\n"
                  f"FROM {BASE}\nRUN mkdir -m 0777 /seen\nUSER nobody\n"
                  "RUN --mount=type=bind,source=d,target=/m,U,rw,z stat -c '%u:%g %n' /m /m/y > /seen/ctx "
                  "&& echo w > /m/w\n"
                  "RUN --mount=type=bind,from=src,source=/data,target=/m,U,Z stat -c '%u:%g' /m/s > /seen/stage\n"
                  "RUN --mount=type=cache,target=/c,id=fidelity-u,U touch /c/mine "
                  "&& stat -c '%u' /c/mine > /seen/cache\n"
                  "USER root\n"
                  "RUN --mount=type=bind,source=d,target=/m,O echo o > /m/o && cat /m/y /m/o > /seen/overlay\n")
    build(ctx, dockerfile, "flags")
    root = rootfs(local_store, "flags", tmp_path / "b")
    assert (root / "seen" / "ctx").read_text() == "65534:65534 /m\n65534:65534 /m/y\n"
    assert (root / "seen" / "stage").read_text() == "65534:65534\n"
    assert (root / "seen" / "cache").read_text() == "65534\n"
    assert (root / "seen" / "overlay").read_text() == "y\no\n"
    assert sorted(os.listdir(ctx / "d")) == ["y"] and os.stat(ctx / "d" / "y").st_uid == 0
    assert not (root / "m").exists() or not os.listdir(root / "m")
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN --mount=type=tmpfs,target=/t,U true\n")
    assert "U and O flags apply to bind and cache" in \
        one_line_error(imagetool("build", "-t", "bad", str(ctx), check=False))


def test_volume_flags(tmp_path: Path, local_store: Path, base: Path) -> None:
    """build -v: O writes over the directory into a throwaway layer; U chowns it to the step's user
    (buildah's documented meaning); `run -v` still refuses U and O."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    over, owned = tmp_path / "over", tmp_path / "owned"
    over.mkdir()
    owned.mkdir()
    (over / "a").write_text("a\n")
    build(ctx, f"FROM {BASE}\nRUN echo b > /ov/b && cat /ov/a /ov/b > /seen\nUSER nobody\n"
               "RUN touch /uv/by-nobody\n", "vols", "-v", f"{over}:/ov:O,z", "-v", f"{owned}:/uv:U")
    assert (rootfs(local_store, "vols", tmp_path / "b") / "seen").read_text() == "a\nb\n"
    assert sorted(os.listdir(over)) == ["a"]
    assert os.stat(owned).st_uid == 65534 and os.stat(owned / "by-nobody").st_uid == 65534
    proc = imagetool("run", "--rm", "-v", f"{over}:/ov:O", BASE, "true", check=False)
    assert "options are" in one_line_error(proc)
    assert imagetool("run", "--rm", "-v", f"{over}:/ov:ro,Z", BASE, "cat", "/ov/a").stdout == "a\n"


def test_buildah_agrees_on_duplicate_stage_names(tmp_path: Path, local_store: Path, base: Path) -> None:
    """The same file through buildah 1.28 (which has no FROM <index> yet): the same image content."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = (f"FROM {BASE} AS x\nRUN echo first > /which\nFROM x AS mid\nRUN cat /which > /mid\n"
                  f"FROM {BASE} AS x\nRUN echo second > /which\nFROM {BASE}\nCOPY --from=x /which /which\n"
                  "COPY --from=mid /mid /mid\n")
    build(ctx, dockerfile, "both")
    ours = fs_tree(rootfs(local_store, "both", tmp_path / "b"))
    buildah = buildah_with_base(tmp_path, base)
    buildah.bud(ctx, ctx / "Dockerfile", "both")
    theirs = buildah.tree("both")
    assert ours["/which"][5] == b"second\n" and ours["/mid"][5] == b"first\n"
    # buildah 1.28 answers /mid (FROM x before the second x) with "first" or "second" from run to run;
    # everything else it builds the same way every time
    assert {p: e for p, e in ours.items() if p != "/mid"} == \
        {p: e for p, e in theirs.items() if p not in BUILDAH_STUBS and p != "/mid"}


def test_workdir_and_u_flag_owners_rootless(rootless_user) -> None:  # type: ignore[no-untyped-def]
    """Rootless, the ids WORKDIR and U hand out are the container's own (its nobody), not the host's."""
    user = rootless_user
    work = user.mkdtemp()
    layout, ctx = work / "base", work / "ctx"
    busybox_image(layout, "latest")
    (ctx / "d").mkdir(parents=True)
    (ctx / "d" / "y").write_text("y\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE}\nUSER nobody\nWORKDIR /home/nobody/w\nRUN stat -c '%u:%g' . > wd\n"
        "RUN --mount=type=bind,source=d,target=/m,U stat -c '%u:%g' /m/y > u\n")
    user.give(work)
    env = {"IMAGETOOL_STORE": str(work / "store")}
    user.imagetool("copy", f"oci:{layout}:latest", BASE, env=env)
    user.imagetool("build", "-t", "rl", str(ctx), env=env)
    out = user.imagetool("run", "--rm", "rl", "cat", "wd", "u", env=env).stdout
    assert out == "65534:65534\n65534:65534\n"
    assert os.stat(ctx / "d" / "y").st_uid == user.uid


# -- found by building buildah's test Dockerfiles with both tools


def test_cache_mount_from_a_stage_starts_as_its_content(tmp_path: Path, local_store: Path, base: Path) -> None:
    """BuildKit's `from` of a cache mount is the cache's base: the stage's `source` directory; a cache
    of that base is kept apart from the plain cache of the same target."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    build(ctx, f"FROM {BASE} AS builder\n"
               "RUN mkdir -p /sub/deeper && echo one > /sub/one && echo two > /sub/deeper/two\n"
               f"FROM {BASE}\nRUN --mount=type=cache,target=/test echo plain > /test/plain\n"
               "RUN --mount=type=cache,from=builder,source=/sub,target=/test cat /test/one /test/deeper/two > /seen "
               "&& touch /test/kept\n"
               "RUN --mount=type=cache,from=builder,source=/sub,target=/test ls /test > /listing\n"
               "RUN --mount=type=cache,target=/test ls /test > /plain-listing\n", "cachefrom")
    root = rootfs(local_store, "cachefrom", tmp_path / "b")
    assert (root / "seen").read_text() == "one\ntwo\n"
    assert (root / "listing").read_text() == "deeper\nkept\none\n"
    assert (root / "plain-listing").read_text() == "plain\n"


def test_a_base_without_path_gets_the_default_one(tmp_path: Path, local_store: Path) -> None:
    """As BuildKit (and buildah) do: a stage whose base image sets no PATH has the default PATH."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hi\n")
    imagetool("import", "-q", "-c", "ENV LANG=C.UTF-8", str(root), "localhost/nopath:1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    build(ctx, "FROM localhost/nopath:1\nLABEL a=b\n", "withpath")
    assert config_of(local_store, "localhost/withpath:latest")["config"]["Env"] == [
        "LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_copy_exclude(tmp_path: Path, local_store: Path, base: Path) -> None:
    """BuildKit's COPY --exclude: patterns in .dockerignore syntax, relative to each copied source."""
    ctx = tmp_path / "ctx"
    (ctx / "dir" / "sub").mkdir(parents=True)
    for name in ("home.txt", "home.md", "homer.sh", "dir/keep.sh", "dir/drop.txt", "dir/sub/drop.txt",
                 "dir/sub/keep.md"):
        (ctx / name).write_text(name)
    build(ctx, f"FROM {BASE}\nCOPY --exclude=*.txt hom* /mydir/\n"
               "COPY --exclude=**/*.txt --exclude=sub/*.md dir /d\n"
               "ADD --exclude=*.sh dir /added\n", "excl")
    tree = fs_tree(rootfs(local_store, "excl", tmp_path / "b"))
    assert sorted(p for p in tree if p.startswith("/mydir/")) == ["/mydir/home.md", "/mydir/homer.sh"]
    assert sorted(p for p in tree if p.startswith("/d/")) == ["/d/keep.sh", "/d/sub"]
    assert sorted(p for p in tree if p.startswith("/added/")) == [
        "/added/drop.txt", "/added/sub", "/added/sub/drop.txt", "/added/sub/keep.md"]
