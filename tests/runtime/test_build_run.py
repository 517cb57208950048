"""RUN steps in the embedded runtime: a Dockerfile FROM busybox built, then its result run."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from imagetool.build.executor import BuildOptions, build
from imagetool.build.runstep import ContainerStepRunner
from imagetool.errors import BuildError, describe
from imagetool.layer.diff import write_diff
from imagetool.manifest import parse_manifest
from imagetool.transports.local import parse as parse_local
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore
from tests.lib.cli import imagetool


def _unpack(store: LayoutStore, layers: list) -> list[Path]:  # type: ignore[type-arg]
    return list(reversed(SnapshotStore(store).prepare(layers)))


def _build(tmp_path: Path, store: Path, dockerfile: str, tag: str, **kw: object) -> list[str]:
    ctx = tmp_path / f"ctx-{tag}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.txt").write_text("from the context\n")
    lines: list[str] = []
    build(BuildOptions(dockerfile=ctx / "Dockerfile", context=ctx, store=LayoutStore.create(store), tags=[tag],
                       runner=ContainerStepRunner(), unpack=_unpack, differ=write_diff, output=lines.append,
                       **kw))  # type: ignore[arg-type]
    return lines


def test_run_steps_build_an_image_that_runs(busybox: str, local_store: Path, tmp_path: Path) -> None:
    lines = _build(tmp_path, local_store, """\
FROM busybox
ENV GREETING=hi
RUN echo "$GREETING from run" > /etc/greeting && echo step-output-line && id -u
RUN rm /bin/ls && mkdir -p /data && echo 1 > /data/one
USER nobody
RUN echo "user $(id -u)"
USER root
WORKDIR /data
RUN pwd > /data/where
RUN <<EOF
echo heredoc > /data/heredoc
EOF
""", "built")
    assert "step-output-line" in lines and "0" in lines and "user 65534" in lines
    out = imagetool("run", "--rm", "built", "sh", "-c",
                    "cat /etc/greeting /data/where /data/heredoc; test -e /bin/ls && echo LS; true"
                    ).stdout.splitlines()
    assert out[:3] == ["hi from run", "/data", "heredoc"]
    assert "LS" not in out
    # the mountpoints a RUN needed did not become part of the image
    names = _layer_names(local_store, "built")
    assert "etc/greeting" in names and "data/heredoc" in names
    assert not {"etc/hosts", "etc/resolv.conf", "etc/hostname"} & names


def _layer_names(store_path: Path, name: str) -> set[str]:
    """Every path in the image's layers (so what RUN left behind, not what `run` mounts)."""
    store = LayoutStore.open(store_path)
    desc = parse_local(name).resolve(store)
    manifest = parse_manifest(store.read_blob(desc.digest))
    names: set[str] = set()
    for layer in manifest.layers:
        with store.open_blob(layer.digest) as blob, tarfile.open(fileobj=blob, mode="r|*") as tar:
            names.update(member.name.strip("./") for member in tar)
    return names


def test_run_failure_and_mounts(busybox: str, local_store: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError) as failed:
        _build(tmp_path, local_store, "FROM busybox\nRUN echo before; exit 7\n", "failing")
    assert "status 7" in describe(failed.value)
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    _build(tmp_path, local_store, """\
FROM busybox AS base
RUN mkdir /stuff && echo from-stage > /stuff/file

FROM busybox
RUN --mount=type=bind,target=/ctx cat /ctx/hello.txt > /copied && (touch /ctx/x 2>/dev/null || echo ro > /ro)
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && test -f /scratch/t && echo ok > /tmpfs-ok
RUN --mount=type=cache,target=/cache echo cached >> /cache/log && cat /cache/log > /cache-seen
RUN --network=none ip -o link | wc -l > /links
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secret-len
RUN --mount=type=bind,from=base,source=/stuff,target=/mnt/s cat /mnt/s/file > /from-stage
RUN --mount=type=bind,from=base,target=/mnt/rw,rw echo scribble > /mnt/rw/stuff/file && cat /mnt/rw/stuff/file > /rw
""", "mounted", secrets={"tok": secret})
    out = imagetool("run", "--rm", "mounted", "sh", "-c",
                    "cat /copied /ro /tmpfs-ok /cache-seen /links /secret-len /from-stage /rw;"
                    "ls -A /scratch /ctx /cache /run/secrets /mnt 2>/dev/null | grep -v : | grep -c . || true").stdout
    assert out.splitlines() == ["from the context", "ro", "ok", "cached", "1", "6", "from-stage", "scribble", "0"]
    names = _layer_names(local_store, "mounted")
    mountpoints = ("scratch", "ctx", "cache", "run/secrets", "mnt")
    assert not {n for n in names if n in mountpoints or n.startswith(tuple(m + "/" for m in mountpoints))}


def test_cli_build_uses_the_runtime(busybox: str, local_store: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "cli-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo built-by-cli > /marker && hostname > /host\n")
    imagetool("build", "-t", "clibuilt", str(ctx))
    out = imagetool("run", "--rm", "clibuilt", "cat", "/marker", "/host").stdout.split()
    assert out == ["built-by-cli", "buildkitsandbox"]


def test_run_on_a_bare_root_leaves_no_mountpoints(local_store: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "bare"
    ctx.mkdir()
    shutil.copy("/bin/busybox", ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /busybox\n'
        'RUN ["/busybox", "sh", "-c", "/busybox mkdir /made && /busybox ls /dev > /made/dev"]\n')
    lines: list[str] = []
    build(BuildOptions(dockerfile=ctx / "Dockerfile", context=ctx, store=LayoutStore.create(local_store),
                       tags=["bare"], runner=ContainerStepRunner(), unpack=_unpack, differ=write_diff,
                       output=lines.append))
    names = _layer_names(local_store, "bare")
    assert {"busybox", "made", "made/dev"} <= names
    # /proc, /dev, /sys, /etc and its files existed only to be mounted over
    assert not names & {"proc", "dev", "sys", "etc", "etc/hosts", "dev/pts"}
