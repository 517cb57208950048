"""`imagetool build` with RUN steps really running, FROM a busybox base the tests make.

Each case builds through the CLI, unpacks the result with umoci and runs it under runc; where
buildah 1.28 understands the Dockerfile, the filesystem and config are compared with its image.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.copy import copy_image
from imagetool.transports import parse_image_name
from tests.build.test_build import config_of
from tests.lib.buildah import Buildah, fs_tree
from tests.lib.bundles import runc_run, umoci_unpack
from tests.lib.cli import imagetool, skopeo, tool
from tests.lib.images import busybox_image
from tests.lib.registry import Registry

CASES = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles"
BASE = "localhost/busybox:base"
#: empty mountpoint stubs buildah 1.28 leaves in RUN layers (imagetool leaves none)
BUILDAH_STUBS = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run"}


def base_image(tmp_path: Path, *names: str) -> Path:
    """The busybox base in an OCI layout, copied into the local store under each name."""
    layout = tmp_path / "base"
    busybox_image(layout, "latest")
    for name in names or (BASE,):
        copy_image(parse_image_name(f"oci:{layout}:latest"), parse_image_name(name))
    return layout


def run_image(store: Path, name: str, bundle: Path) -> tuple[str, dict]:  # type: ignore[type-arg]
    """umoci unpack + runc run: the image's output and its filesystem."""
    umoci_unpack(store, name, bundle)
    return runc_run(bundle), fs_tree(bundle / "rootfs")


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_run_mounts_and_network(runtime: str, tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.txt").write_text("orig\n")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    # the secret from a file, or (runc run) from an environment variable
    secret = f"id=token,src={token}" if runtime == "embedded" else "id=token,env=BUILD_TOKEN"
    argv = ["build", "--runtime", runtime, "--no-cache", "--secret", secret,
            "-f", str(CASES / "run-mounts" / "Dockerfile"), "-t", "mounts", str(ctx)]
    first = imagetool(*argv, env={"BUILD_TOKEN": "s3cret\n"}).stdout
    assert "[2/2] STEP 2/11: RUN --mount=type=cache,target=/var/cache/app,id=counter" in first
    out, tree = run_image(local_store, "localhost/mounts:latest", tmp_path / "b1")
    assert out == "1\ndep\nro\nchanged\nchanged\n7\n440 65534\ntmpfs\n1\n"
    imagetool(*argv, env={"BUILD_TOKEN": "s3cret\n"})
    out, _ = run_image(local_store, "localhost/mounts:latest", tmp_path / "b2")
    assert out.startswith("2\n"), "the cache mount did not persist between builds"
    # rw binds write to a throwaway copy; mount targets and the secret leave nothing in the image
    assert sorted(p.name for p in ctx.iterdir()) == ["file.txt"] and (ctx / "file.txt").read_text() == "orig\n"
    for gone in ("/run", "/run/secrets/token", "/tok", "/ctx", "/one", "/mnt", "/scratch", "/var"):
        assert gone not in tree, gone
    assert "s3cret" not in json.dumps(config_of(local_store, "localhost/mounts:latest"))


def test_run_language_like_buildah(tmp_path: Path, local_store: Path) -> None:
    layout = base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    (ctx / "b.txt").write_text("b\n")
    dockerfile = CASES / "run-language" / "Dockerfile"
    args = ["--build-arg", "WHO=nobody", "--build-arg", "HTTP_PROXY=http://proxy:3128", "--build-arg",
            "no_proxy=internal"]
    out = imagetool("build", *args, "-f", str(dockerfile), "-t", "lang", str(ctx)).stdout
    assert "[2/2] STEP 12/18: RUN test \"$0\" = /bin/sh" in out
    output, ours = run_image(local_store, "localhost/lang:latest", tmp_path / "b")
    assert output == "who=nobody proxy=http://proxy:3128 no_proxy=internal\nexec form\nnobody\nshell ce\ntool\n"
    assert ours.pop("/data")[0] == "d"   # umoci makes the VOLUME's mountpoint; the layers hold none
    assert ours["/texts/a.txt"][1:4] == (0o640, 65534, 65534) and "/bin/ls" not in ours
    cfg = config_of(local_store, "localhost/lang:latest")
    # a predefined proxy arg reaches RUN but not the image; declared (HTTP_PROXY), it is in the history
    assert "internal" not in json.dumps(cfg)
    first_run = '|2 HTTP_PROXY=http://proxy:3128 WHO=nobody /bin/sh -c echo "who=$WHO proxy='

    buildah = Buildah(tmp_path / "buildah", driver="overlay")
    image_id = tool([*buildah.argv, "pull", "-q", f"oci:{layout}:latest"]).stdout.strip()
    tool([*buildah.argv, "tag", image_id, BASE])
    buildah.bud(ctx, dockerfile, "lang", *args, "--layers", "--runtime", "runc", "--format", "docker")
    theirs = {path: entry for path, entry in buildah.tree("lang").items() if path not in BUILDAH_STUBS}
    assert ours == theirs
    ours_run = [h["created_by"] for h in cfg["history"] if h["created_by"].startswith(first_run)]
    theirs_run = [h["created_by"] for h in buildah.image("lang")["Docker"]["history"]
                  if h["created_by"].startswith(first_run)]
    assert len(ours_run) == 1 and ours_run == theirs_run

    imagetool("build", *args, "--format", "docker", "-f", str(dockerfile), "-t", "lang-docker", str(ctx))
    docker_cfg = config_of(local_store, "localhost/lang-docker:latest")["config"]
    their_cfg = buildah.image("lang")["Docker"]["config"]
    for key in ("User", "Env", "Cmd", "Healthcheck", "Volumes", "WorkingDir", "StopSignal", "Shell"):
        assert docker_cfg[key] == their_cfg[key], key


def test_run_builds_are_reproducible_and_cached(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    argv = ["build", "-q", "-f", str(CASES / "run-language" / "Dockerfile"), str(ctx)]
    one = imagetool(*argv, "--no-cache", "--timestamp", "1000").stdout.split()[-1]
    two = imagetool(*argv, "--no-cache", "--timestamp", "1000").stdout.split()[-1]
    three = imagetool(*argv, "--no-cache", env={"SOURCE_DATE_EPOCH": "1000"}).stdout.split()[-1]
    assert one == two == three
    assert imagetool(*argv, "--no-cache", "--timestamp", "2000").stdout.split()[-1] != one

    loud = [a for a in argv if a != "-q"]
    first = imagetool(*loud, "--iidfile", str(tmp_path / "id1")).stdout
    again = imagetool(*loud, "--iidfile", str(tmp_path / "id2")).stdout
    # every RUN and COPY, and the WORKDIR that made /work
    assert first.count("--> Using cache") < 9 and again.count("--> Using cache") == 9
    assert (tmp_path / "id1").read_text() == (tmp_path / "id2").read_text()
    changed = imagetool(*loud, "--build-arg", "WHO=nobody", "-t", "c3").stdout
    assert changed.count("--> Using cache") == 1   # only the first stage's RUN
    output, _ = run_image(local_store, "localhost/c3:latest", tmp_path / "b")
    assert output.startswith("who=nobody proxy=unset no_proxy=unset\n")


def test_heredocs_and_onbuild_triggers_run(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path, "busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    out = imagetool("build", "-f", str(CASES / "heredocs" / "Dockerfile"), "-t", "docs", str(ctx)).stdout
    assert "quoted delimiter keeps world for the shell\n" in out
    quiet = imagetool("build", "-q", "--no-cache", "-f", str(CASES / "heredocs" / "Dockerfile"), str(ctx)).stdout
    assert len(quiet.splitlines()) == 1 and len(quiet.strip()) == 64   # -q: the image ID, no RUN output
    bundle = umoci_unpack(local_store, "localhost/docs:latest", tmp_path / "b1")
    files = ["/greeting", "/file.txt", "/etc/motd", "/heredocs/one.txt", "/heredocs/two.txt"]
    assert runc_run(bundle, ["cat", *files]) == "hello world\nline one\nline two\nwelcome to world\nfirst\nsecond\n"

    imagetool("build", "-f", str(CASES / "onbuild" / "Dockerfile"), "-t", "parent", str(ctx))
    child = tmp_path / "child"
    child.mkdir()
    (child / "c.txt").write_text("c\n")
    (child / "Dockerfile").write_text("FROM parent\nRUN cat /onbuild && stat -c %u:%g /src/c.txt\n"
                                      'CMD ["/bin/sh", "-c", "echo $BUILT; cat /onbuild"]\n')
    out = imagetool("build", "--build-arg", "GREETING=hey", "-t", "child", str(child)).stdout
    assert "STEP 3/7: RUN echo \"$GREETING\" > /onbuild" in out and "hey\n1:1\n" in out
    bundle = umoci_unpack(local_store, "localhost/child:latest", tmp_path / "b2")
    assert runc_run(bundle) == "yes\nhey\n"
    assert "OnBuild" not in config_of(local_store, "localhost/child:latest")["config"]


def test_outputs_iidfile_and_push(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                  local_store: Path) -> None:
    base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo built $(ip -o link | wc -l) > /built\n"
                                    'CMD ["/bin/cat", "/built"]\n')
    iid = tmp_path / "iid"
    push = plain_registry.ref("build/pushed:1")
    out = imagetool("build", "--format", "docker", "--iidfile", str(iid), "-t", "outs",
                    "-t", f"oci:{tmp_path}/layout:v1", "-t", f"docker-archive:{tmp_path}/a.tar:x/y:1",
                    "--push", push, "--tls-verify=false", "--network", "none", str(ctx)).stdout
    assert f"Copied to {push}" in out
    assert iid.read_text().startswith("sha256:") and iid.read_text()[7:19] in out
    bundle = umoci_unpack(tmp_path / "layout", "v1", tmp_path / "b")
    assert runc_run(bundle) == "built 1\n"   # --network none: the RUN saw only lo
    archived = json.loads(skopeo("inspect", f"docker-archive:{tmp_path}/a.tar").stdout)
    pushed = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", push).stdout)
    assert pushed["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(archived["Layers"]) == len(pushed["layers"]) == 2
    assert config_of(local_store, "localhost/outs:latest")["config"]["Cmd"] == ["/bin/cat", "/built"]


def test_target_and_squash_with_run_steps(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    argv = ["build", "-f", str(CASES / "run-language" / "Dockerfile"), str(ctx)]
    out = imagetool(*argv, "--target", "tools", "-t", "tools").stdout
    assert "STEP 2/2: RUN mkdir -p /opt/tool" in out and "/args" not in out
    _, tools = run_image(local_store, "localhost/tools:latest", tmp_path / "t")
    assert tools["/opt/tool"][:2] == ("d", 0o750) and "/args" not in tools
    imagetool(*argv, "-t", "layered")
    imagetool(*argv, "--squash", "-t", "squashed")
    assert len(config_of(local_store, "localhost/squashed:latest")["rootfs"]["diff_ids"]) == 1
    _, layered = run_image(local_store, "localhost/layered:latest", tmp_path / "l")
    _, squashed = run_image(local_store, "localhost/squashed:latest", tmp_path / "s")
    assert squashed == layered and "/bin/ls" not in squashed and "/work/gone" not in squashed
