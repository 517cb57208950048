"""`imagetool build` end to end (FROM scratch, COPY, config): runs under runc, equals buildah's image,
is reproducible, and a rebuild with nothing changed is served from the cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from imagetool.build.executor import BuildOptions, build
from imagetool.errors import BuildError, describe
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.build.test_copier import make_context
from tests.lib.buildah import BUILDAH_LABEL, Buildah, fs_tree
from tests.lib.bundles import runc_run, umoci_unpack, write_tree
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.httpdir import serve_directory
from tests.lib.images import busybox_files

CASES = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles"


def config_of(store: Path, name: str) -> dict:  # type: ignore[type-arg]
    layout = LayoutStore.open(store)
    manifest = parse_manifest(layout.read_blob(refs.resolve(layout, name).digest))
    return dict(ImageConfig.parse(layout.read_blob(manifest.config.digest)).doc)


@pytest.fixture
def busybox_ctx(tmp_path: Path) -> Path:
    ctx = tmp_path / "bbctx"
    write_tree(ctx / "rootfs", busybox_files())
    shutil.copy(CASES / "busybox-base" / "Dockerfile", ctx / "Dockerfile")
    return ctx


def test_busybox_base_image_runs(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    out = imagetool("build", "-t", "busybox-base", str(busybox_ctx)).stdout
    assert "STEP 2/4: COPY rootfs/ /" in out and "Successfully tagged localhost/busybox-base:latest" in out
    name = "localhost/busybox-base:latest"
    info = json.loads(skopeo("inspect", f"oci:{local_store}:{name}").stdout)
    assert len(info["Layers"]) == 1 and info["Env"] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    bundle = umoci_unpack(local_store, name, tmp_path / "bundle")
    assert runc_run(bundle, ["/bin/sh", "-c", "echo hello from $(cat /etc/group | head -1)"]) == \
        "hello from root:x:0:\n"


def test_filesystem_equals_buildah(local_store: Path, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    dockerfile = CASES / "copy-semantics" / "Dockerfile"
    imagetool("build", "-f", str(dockerfile), "-t", "copies", str(ctx))
    ours = fs_tree(umoci_unpack(local_store, "localhost/copies:latest", tmp_path / "b") / "rootfs")
    buildah = Buildah(tmp_path / "buildah")
    buildah.bud(ctx, dockerfile, "copies", "--layers=false")
    assert ours == buildah.tree("copies")


def test_config_equals_buildah(local_store: Path, tmp_path: Path) -> None:
    dockerfile = CASES / "config-scratch" / "Dockerfile"
    ctx = tmp_path / "empty"
    ctx.mkdir()
    buildah = Buildah(tmp_path / "buildah")
    for target in ("base", None):
        extra = ["--target", target] if target else []
        imagetool("build", "--format", "docker", "-f", str(dockerfile), "-t", "cfg", *extra, str(ctx))
        buildah.bud(ctx, dockerfile, "cfg", "--format", "docker", *extra)
        theirs = buildah.image("cfg")["Docker"]
        ours = config_of(local_store, "localhost/cfg:latest")
        want = {k: v for k, v in theirs["config"].items()
                if v not in ("", False, None, {}, []) and k != "Hostname"}
        want["Labels"] = {k: v for k, v in want["Labels"].items() if k != BUILDAH_LABEL}
        if target is None:
            # Docker's documented rule: SHELL also wraps shell-form ENTRYPOINT/CMD (buildah 1.28 keeps /bin/sh)
            assert ours["config"]["Entrypoint"] == ["/bin/ash", "-c", "/bin/run"]
            assert want["Entrypoint"] == ["/bin/sh", "-c", "/bin/run"]
            want["Entrypoint"] = ours["config"]["Entrypoint"]
            assert want["Labels"]["from-onbuild"] == "yes"
        assert ours["config"] == want
        assert ours["author"] == theirs["author"] == "someone"
        assert [h["created_by"] for h in ours["history"]] == [h["created_by"] for h in theirs["history"]]
        # the WORKDIRs made /w and /w/sub (buildah makes them too, in the layer it commits at the end)
        assert [h["created_by"] for h in ours["history"] if not h.get("empty_layer")] == \
            ["/bin/sh -c #(nop) WORKDIR /w", "/bin/sh -c #(nop) WORKDIR sub"]


def _options(ctx: Path, store: Path, **kw: object) -> BuildOptions:
    kw.setdefault("output", lambda line: None)
    return BuildOptions(dockerfile=ctx / "Dockerfile", context=ctx, store=LayoutStore.create(store),
                        **kw)  # type: ignore[arg-type]


def test_same_timestamp_same_digest(busybox_ctx: Path, local_store: Path) -> None:
    a = build(_options(busybox_ctx, local_store, tags=["a"], timestamp=1000, no_cache=True))
    b = build(_options(busybox_ctx, local_store, tags=["b"], timestamp=1000, no_cache=True))
    c = build(_options(busybox_ctx, local_store, tags=["c"], timestamp=2000, no_cache=True))
    assert a.steps_run == b.steps_run == 1 and a.descriptor.digest == b.descriptor.digest
    assert c.descriptor.digest != a.descriptor.digest
    assert config_of(local_store, "localhost/a:latest")["created"] == "1970-01-01T00:16:40Z"


def test_rebuild_with_nothing_changed_runs_nothing(tmp_path: Path, local_store: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    shutil.copy(CASES / "copy-semantics" / "Dockerfile", ctx / "Dockerfile")
    first = build(_options(ctx, local_store, tags=["c1"]))
    lines: list[str] = []
    again = build(_options(ctx, local_store, tags=["c2"], output=lines.append))
    # 21 COPY steps and the WORKDIR that made /w
    assert first.steps_run == 22 + 1 and again.steps_run == 0 and again.cache_hits == 22 + 1
    assert again.descriptor.digest == first.descriptor.digest
    assert sum("--> Using cache" in line for line in lines) == 22 + 1
    (ctx / "two.txt").write_text("changed")     # only `COPY *.txt /globbed/` and what follows it
    third = build(_options(ctx, local_store, tags=["c3"]))
    assert third.steps_run == 6 + 4 and third.descriptor.digest != first.descriptor.digest
    assert build(_options(ctx, local_store, tags=["c4"], no_cache=True)).steps_run == 22 + 1


def test_bad_builds_are_one_line_and_tag_nothing(tmp_path: Path, local_store: Path, busybox_ctx: Path) -> None:
    imagetool("build", "-t", "keep", str(busybox_ctx))
    before = (local_store / "index.json").read_bytes()
    cases = {
        "FROM scratch\nCOPY ../outside /x\n": "Dockerfile:2: COPY ../outside /x: forbidden path outside "
                                               "the build context: ../outside",
        "FROM scratch\nCOPY missing /x\n": "Dockerfile:2: COPY missing /x: missing: no such file",
        "FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\n": "Dockerfile:2: COPY --from 'b' refers to",
        "FROM scratch\nBOGUS x\n": "Dockerfile:2: unknown instruction: BOGUS",
        "FROM scratch\nCOPY rootfs/bin/busybox /\nRUN true\n": 'Dockerfile:3: RUN true: exec: "/bin/sh": '
                                                            "executable file not found",
        "FROM scratch\nCOPY rootfs/ /\nRUN exit 3\n": "Dockerfile:3: RUN exit 3: the command exited with status 3",
        "FROM busybox-nonexistent\n": "Dockerfile:1: FROM busybox-nonexistent: base image "
                                       "'busybox-nonexistent' is not in the local store (and pulling is off)",
    }
    for text, message in cases.items():
        (busybox_ctx / "Dockerfile").write_text(text)
        line = one_line_error(imagetool("build", "--pull", "never", "-t", "bad", str(busybox_ctx), check=False))
        assert message in line, line
    line = one_line_error(imagetool("build", "--target", "nope", "-t", "bad", str(busybox_ctx), check=False))
    assert "target stage 'nope' could not be found" in line
    assert (local_store / "index.json").read_bytes() == before


def test_library_errors_are_typed(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY nothing /\n")
    with pytest.raises(BuildError):
        build(_options(ctx, local_store))


def test_cli_flags(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    (busybox_ctx / "Dockerfile").write_text("ARG WHO=nobody\nFROM scratch\nARG WHO\nLABEL who=$WHO\n"
                                            "COPY rootfs/etc/passwd /etc/\n")
    iid = tmp_path / "iid"
    out = imagetool("build", "-q", "--build-arg", "WHO=me", "--label", "extra=1", "--iidfile", str(iid),
                    "--compress", "zstd", "-t", "flags", "-t", "flags:two", "-t", f"oci:{tmp_path}/out:v1",
                    str(busybox_ctx)).stdout
    info = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path}/out:v1").stdout)
    assert info["config"]["Labels"] == {"who": "me", "extra": "1"}
    cfg = config_of(local_store, "localhost/flags:two")
    assert cfg["config"]["Labels"] == {"who": "me", "extra": "1"}
    assert out.strip() == iid.read_text().split(":")[1]
    layout = LayoutStore.open(local_store)
    manifest = parse_manifest(layout.read_blob(refs.resolve(layout, "localhost/flags:latest").digest))
    assert manifest.layers[0].media_type.endswith("+zstd")


def test_buildah_config_flags(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    imagetool("build", "-q", "-t", "busybox-base", str(busybox_ctx))
    ctx = tmp_path / "flags"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox-base\nENV DROP=1 KEEP=2\n"
                                    "RUN echo \"$FROM_FLAG\" > /seen-env; cat /etc/hosts > /seen-hosts; "
                                    "grep CapEff /proc/self/status > /seen-caps; ulimit -n >> /seen-caps; "
                                    "cat /hostdir/in > /seen-volume; echo out > /hostdir/out; "
                                    "grep nameserver /etc/resolv.conf > /seen-dns\n")
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "in").write_text("from the host\n")
    imagetool("build", "-q", "--rm", "--force-rm", "--annotation", "org.opencontainers.image.source=here",
              "--env", "FROM_FLAG=set", "--env", "FROM_HOST", "--env", "UNSET_ON_HOST", "--unsetenv", "DROP",
              "--add-host", "cache.test:127.0.0.5", "--add-host", "v6.test=::1",
              "--cap-drop", "all", "--cap-add", "kill", "--ulimit", "nofile=300:400",
              "-v", f"{hostdir}:/hostdir", "--dns", "192.0.2.53", "-t", "flagged", "-t",
              f"oci:{tmp_path}/out:v1", str(ctx),
              env={"FROM_HOST": "h"})
    assert "UNSET_ON_HOST" not in os.environ
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path}/out:v1").stdout)
    assert raw["annotations"] == {"org.opencontainers.image.source": "here"}
    cfg = config_of(local_store, "localhost/flagged:latest")
    assert cfg["config"]["Env"] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "KEEP=2", "FROM_FLAG=set", "FROM_HOST=h"]
    # RUN saw neither --env (the image's environment only) nor a private /etc/hosts without the extra lines
    layout = LayoutStore.open(local_store)
    manifest = parse_manifest(layout.read_blob(refs.resolve(layout, "localhost/flagged:latest").digest))
    top = tmp_path / "top"
    top.mkdir()
    tool(["tar", "-xf", str(layout.blob_path(manifest.layers[-1].digest)), "-C", str(top)])
    assert (top / "seen-env").read_text() == "\n"
    assert (top / "seen-hosts").read_text().endswith("127.0.0.5\tcache.test\n::1\tv6.test\n")
    assert (top / "seen-caps").read_text().split() == ["CapEff:", f"{1 << 5:016x}", "300"]
    assert (top / "seen-dns").read_text() == "nameserver 192.0.2.53\n"
    # the volume was there for RUN, took its writes, and is not part of the layer
    assert (top / "seen-volume").read_text() == "from the host\n"
    assert (hostdir / "out").read_text() == "out\n" and not (top / "hostdir").exists()
    bad = imagetool("build", "--platform", "linux/amd64", "--arch", "arm64", str(ctx), check=False)
    assert bad.returncode == 2 and "cannot be combined" in one_line_error(bad)


def test_from_omit_history_uncompressed_logfile(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    imagetool("build", "-q", "-t", "busybox-base", str(busybox_ctx))
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nRUN echo hi > /x\n")  # --from gives the RUN its shell
    log = tmp_path / "build.log"
    out = imagetool("build", "--from", "busybox-base", "--omit-history", "-D", "--logfile", str(log),
                    "--retry", "1", "--retry-delay", "10ms", "-t", "plain", str(ctx)).stdout
    assert "STEP" not in out and "STEP 2/2: RUN echo hi > /x" in log.read_text()
    cfg = config_of(local_store, "localhost/plain:latest")
    assert cfg["history"] == [] and len(cfg["rootfs"]["diff_ids"]) == 2
    manifest = json.loads(imagetool("inspect", "--raw", "plain").stdout)
    assert manifest["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"  # the new layer
    assert imagetool("run", "--rm", "plain", "cat", "/x").stdout == "hi\n"
    bad = imagetool("build", "--retry-delay", "soon", str(ctx), check=False)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_named_build_contexts(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    imagetool("build", "-q", "-t", "busybox-base", str(busybox_ctx))
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "data.txt").write_text("one\n")
    (extra / "hidden.txt").write_text("ignored\n")
    (extra / ".dockerignore").write_text("hidden.txt\n")
    ctx = tmp_path / "main"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM alias-base\nCOPY --from=extra data.txt /data.txt\n"
        "RUN --mount=from=extra,target=/mnt cat /mnt/data.txt > /mounted.txt\nCOPY --from=extra . /extra/\n"
        "COPY --from=img /etc/group /from-image-group\n")
    flags = ["--build-context", f"extra={extra}", "--build-context", "alias-base=docker-image://busybox-base",
             "--build-context", "img=container-image://busybox-base", "-t", "named", str(ctx)]

    runs: list[Path] = []

    def files() -> dict[str, str]:
        root = umoci_unpack(local_store, "localhost/named:latest", tmp_path / f"b{len(runs)}") / "rootfs"
        runs.append(root)
        found = {n: (root / n).read_text() for n in ("data.txt", "mounted.txt", "from-image-group")}
        return {**found, "extra": " ".join(sorted(os.listdir(root / "extra")))}

    imagetool("build", *flags)
    first = files()
    assert first["data.txt"] == first["mounted.txt"] == "one\n"
    assert first["extra"] == ".dockerignore data.txt"   # the directory's own .dockerignore applies
    assert first["from-image-group"] == (busybox_ctx / "rootfs" / "etc" / "group").read_text()
    assert imagetool("build", *flags).stdout.count("Using cache") == 4
    (extra / "data.txt").write_text("two\n")   # a changed named context is no cache hit
    imagetool("build", *flags)
    assert files()["mounted.txt"] == "two\n"
    bad = imagetool("build", "--build-context", "x=https://example.invalid/ctx.tar", str(ctx), check=False)
    assert bad.returncode != 0 and "only directories" in one_line_error(bad)


def tar_unpack(store: LayoutStore, layers: list) -> list[Path]:  # type: ignore[type-arg]
    """Layer directories made by GNU tar (right for layers without whiteouts, as the busybox base has)."""
    dirs = []
    for layer, diff_id in layers:
        target = store.root.parent / "unpacked" / diff_id.hex
        if not target.exists():
            target.mkdir(parents=True)
            tool(["tar", "-xf", str(store.blob_path(layer.digest)), "--same-owner", "-C", str(target)])
        dirs.append(target)
    return dirs


def test_from_an_image_in_the_local_store(busybox_ctx: Path, local_store: Path, tmp_path: Path) -> None:
    imagetool("build", "-t", "busybox-base", str(busybox_ctx))
    ctx = tmp_path / "child"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the child\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox-base AS child\nCOPY --chown=nobody:nogroup hello.txt /home/\nENV ADDED=1\n"
        "FROM scratch\nCOPY --from=busybox-base /bin/busybox /bin/sh\nCOPY --from=child /home /home\n"
        'CMD ["/bin/sh", "-c", "cat /home/hello.txt; stat -c %u:%g /home/hello.txt"]\n')
    store = LayoutStore.create(local_store)
    for target, tag in (("child", "child"), (None, "final")):
        build(_options(ctx, local_store, tags=[tag], target=target, unpack=tar_unpack, pull="never"))
    cfg = config_of(local_store, "localhost/child:latest")
    base_cfg = config_of(local_store, "localhost/busybox-base:latest")
    assert cfg["rootfs"]["diff_ids"][0] == base_cfg["rootfs"]["diff_ids"][0] and len(cfg["rootfs"]["diff_ids"]) == 2
    assert cfg["config"]["Env"] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "ADDED=1"]
    assert cfg["history"][: len(base_cfg["history"])] == base_cfg["history"]
    bundle = umoci_unpack(local_store, "localhost/final:latest", tmp_path / "bundle")
    assert runc_run(bundle) == "hello from the child\n65534:65534\n"
    assert store.has_blob(refs.resolve(store, "localhost/final:latest").digest)


def test_add_unpacks_local_archives_like_buildah(tmp_path: Path, local_store: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("x\n")
    os.chmod(src / "d" / "x", 0o640)
    os.symlink("x", src / "d" / "l")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    tar = ["tar", "--owner=5", "--group=6", "--numeric-owner", "-C", str(src)]
    tool([*tar, "-cf", str(ctx / "a.tar"), "d"])
    tool([*tar, "-czf", str(ctx / "b.tgz"), "d"])
    tool([*tar, "-cJf", str(ctx / "c.tar.xz"), "d"])
    tool([*tar, "-cjf", str(ctx / "d.tar.bz2"), "d"])
    tool([*tar, "--zstd", "-cf", str(ctx / "e.tar.zst"), "d"])
    (ctx / "notatar.txt").write_text("just text\n")
    dockerfile = CASES / "add-archives" / "Dockerfile"
    imagetool("build", "-f", str(dockerfile), "-t", "adds", str(ctx))
    ours = fs_tree(umoci_unpack(local_store, "localhost/adds:latest", tmp_path / "b") / "rootfs")
    buildah = Buildah(tmp_path / "buildah")
    buildah.bud(ctx, dockerfile, "adds", "--layers=false")
    assert ours == buildah.tree("adds")
    assert ours["/uc"][2:4] == (1, 1) and ours["/uc/d/x"][1:4] == (0o640, 5, 6)


@pytest.fixture
def http_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real HTTP server (Python's http.server) on 127.0.0.1 serving a directory."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_directory(root) as url:
        yield root, url


def test_add_url_like_buildah_and_cached_by_validators(http_root, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       local_store: Path) -> None:
    root, base = http_root
    (root / "remote.txt").write_text("remote content\n")
    digest = "sha256:" + hashlib.sha256(b"remote content\n").hexdigest()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    adds = f"FROM scratch\nADD {base}/remote.txt /r/\nADD {base}/remote.txt /named\n"
    (ctx / "Dockerfile").write_text(adds + f"ADD --chown=3:4 {base}/remote.txt /c/x\n")
    build(_options(ctx, local_store, tags=["u0"]))
    ours = fs_tree(umoci_unpack(local_store, "localhost/u0:latest", tmp_path / "b") / "rootfs")
    buildah = Buildah(tmp_path / "buildah")
    buildah.bud(ctx, ctx / "Dockerfile", "u", "--layers=false")
    assert ours == buildah.tree("u")
    assert ours["/named"][1:] == (0o600, 0, 0, "", b"remote content\n")
    # buildah 1.28 has no --checksum; the rest is ours alone
    (ctx / "Dockerfile").write_text(adds + f"ADD --chown=3:4 --checksum={digest} {base}/remote.txt /c/x\n")
    first = build(_options(ctx, local_store, tags=["u1"]))
    again = build(_options(ctx, local_store, tags=["u2"]))
    assert again.steps_run == 0 and again.descriptor.digest == first.descriptor.digest
    (root / "remote.txt").write_text("remote content, changed\n")   # new validators: fetched again,
    with pytest.raises(BuildError) as info:                           # and now --checksum fails
        build(_options(ctx, local_store, tags=["u3"]))
    assert "Dockerfile:4: ADD --chown=3:4 --checksum" in describe(info.value)
    assert "digest mismatch" in describe(info.value)


def test_squash_gives_one_layer_with_the_same_files(tmp_path: Path, local_store: Path) -> None:
    ctx = make_context(tmp_path / "ctx")
    dockerfile = CASES / "copy-semantics" / "Dockerfile"
    imagetool("build", "-f", str(dockerfile), "--target", "base", "-t", "layered", str(ctx))
    imagetool("build", "-f", str(dockerfile), "--target", "base", "--squash", "-t", "squashed", str(ctx))
    cfg = config_of(local_store, "localhost/squashed:latest")
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    assert sum(not h.get("empty_layer") for h in cfg["history"]) == 1
    layered = fs_tree(umoci_unpack(local_store, "localhost/layered:latest", tmp_path / "l") / "rootfs")
    squashed = fs_tree(umoci_unpack(local_store, "localhost/squashed:latest", tmp_path / "s") / "rootfs")
    assert squashed == layered and "/cdir/x/sub/again" in squashed


def test_a_failed_build_keeps_the_steps_it_finished(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nCOPY missing /m\n")
    with pytest.raises(BuildError):
        build(_options(ctx, local_store, tags=["f"]))
    (ctx / "missing").write_text("now here")
    lines: list[str] = []
    result = build(_options(ctx, local_store, tags=["f"], output=lines.append))
    assert (result.cache_hits, result.steps_run) == (1, 1)
    assert lines[1] == "STEP 2/3: COPY a /a" and lines[2].startswith("--> Using cache ")
    assert lines[3] == "STEP 3/3: COPY missing /m" and not lines[4].startswith("--> Using cache")


def test_platform_and_ignorefile(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "keep.txt").write_text("k")
    (ctx / "drop.txt").write_text("d")
    (ctx / ".dockerignore").write_text("keep.txt\n")
    ignore = tmp_path / "other.ignore"
    ignore.write_text("drop.txt\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nARG TARGETVARIANT\n"
                                    "LABEL arch=$TARGETARCH variant=$TARGETVARIANT\nCOPY *.txt /\n")
    imagetool("build", "--platform", "linux/arm64/v8", "--ignorefile", str(ignore), "-t", "arm", str(ctx))
    cfg = config_of(local_store, "localhost/arm:latest")
    assert (cfg["architecture"], cfg["variant"], cfg["os"]) == ("arm64", "v8", "linux")
    assert cfg["config"]["Labels"] == {"arch": "arm64", "variant": "v8"}
    tree = fs_tree(umoci_unpack(local_store, "localhost/arm:latest", tmp_path / "b") / "rootfs")
    assert set(tree) == {"/keep.txt"}
    line = one_line_error(imagetool("build", "--platform", "arm64", str(ctx), check=False))
    assert "--platform" in line and "os/arch" in line


def test_config_order_does_not_depend_on_instruction_order(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nUSER 1\nLABEL a=b\nENV X=1\n")
    one = build(_options(ctx, local_store, tags=["o1"], timestamp=0))
    (ctx / "Dockerfile").write_text("FROM scratch\nENV X=1\nLABEL a=b\nUSER 1\n")
    two = build(_options(ctx, local_store, tags=["o2"], timestamp=0))
    assert list(config_of(local_store, "localhost/o1:latest")["config"]) == ["User", "Env", "Labels"]
    assert one.image_id != two.image_id   # the history differs ...
    first = config_of(local_store, "localhost/o1:latest")
    second = config_of(local_store, "localhost/o2:latest")
    assert json.dumps(first["config"]) == json.dumps(second["config"])   # ... the config section does not
