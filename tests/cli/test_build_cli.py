"""buildah's command line for `build` (several -f, platforms, --output, names, remote contexts, flags) and
`images`/`ps` output, each compared with what buildah and BuildKit do."""

from __future__ import annotations

import contextlib
import io
import json
import platform as host
import shutil
import socket
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from imagetool import media
from imagetool.descriptor import Descriptor, Platform
from imagetool.manifest import Index
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.httpdir import serve_directory
from tests.lib.images import busybox_files, make_layer, random_image, write_image
from tests.lib.rootless import RootlessUser

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
FOREIGN = "arm64" if HOST_ARCH != "arm64" else "amd64"


def busybox_index(path: Path, name: str = "latest") -> None:
    """An OCI index of a busybox image for this machine and one whose config says FOREIGN (same files:
    enough to tell which instance a build took, and to check that its RUN is refused)."""
    layer = make_layer(busybox_files(), "gzip", True)
    config = {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]}
    native = write_image(path, None, [layer], config=config, architecture=HOST_ARCH)
    foreign = write_image(path, None, [layer], config={**config, "Labels": {"arch": FOREIGN}},
                          architecture=FOREIGN, create=False)
    store = LayoutStore.open(path)
    index = Index.build(media.OCI_INDEX, [native.with_(platform=Platform(HOST_ARCH, "linux"), annotations={}),
                                          foreign.with_(platform=Platform(FOREIGN, "linux"), annotations={})])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), name)])


@pytest.fixture
def bases(tmp_path: Path) -> dict[str, Path]:
    """`multi`: the two-platform index; `single`: this machine's image only."""
    multi, single = tmp_path / "multi", tmp_path / "single"
    busybox_index(multi)
    write_image(single, "latest", [make_layer(busybox_files(), "gzip", True)],
                config={"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]}, architecture=HOST_ARCH)
    return {"multi": multi, "single": single}


def _context(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "a.txt").write_text("from the context\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _config(store: Path, name: str) -> dict:  # type: ignore[type-arg]
    out = imagetool("inspect", "--config", name, env={"IMAGETOOL_STORE": str(store)}).stdout
    return json.loads(out)  # type: ignore[no-any-return]


# -- item 9: several -f files

def test_several_dockerfiles_are_read_as_one(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, "")
    (ctx / "one").write_text(f"FROM oci:{bases['single']}:latest\nCOPY a.txt /\n")
    (ctx / "two").write_text("RUN cat /a.txt > /b.txt")  # no newline at its end: the next file still starts a line
    (ctx / "three").write_text("LABEL last=three\n")
    out = imagetool("build", "-f", str(ctx / "one"), "-f", str(ctx / "two"), "--file", str(ctx / "three"),
                    "-t", "joined", str(ctx)).stdout
    assert "STEP 4/4: LABEL last=three" in out
    assert imagetool("run", "--rm", "joined", "cat", "/b.txt").stdout == "from the context\n"
    assert _config(local_store, "joined")["config"]["Labels"] == {"last": "three"}
    (ctx / "bad").write_text("FROBNICATE\n")
    line = one_line_error(imagetool("build", "-f", str(ctx / "one"), "-f", str(ctx / "bad"), str(ctx), check=False))
    assert "bad" in line and ":3:" in line  # the line counts through both files


# -- item 10 and 11: platforms

def test_several_platforms_make_a_manifest_list(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"FROM oci:{bases['multi']}:latest\nARG TARGETARCH\nCOPY a.txt /$TARGETARCH.txt\n")
    imagetool("build", "--platform", f"linux/{HOST_ARCH},linux/{FOREIGN}", "--manifest", "both", "-t", "both-tag",
              str(ctx))
    listed = json.loads(imagetool("manifest", "inspect", "both").stdout)
    archs = sorted(m["platform"]["architecture"] for m in listed["manifests"])
    assert archs == sorted([HOST_ARCH, FOREIGN])
    assert json.loads(imagetool("inspect", "--raw", "both-tag").stdout) == listed  # -t names the list too
    for entry in listed["manifests"]:
        arch = entry["platform"]["architecture"]
        cfg = _config(local_store, f"localhost/both@{entry['digest']}")
        assert cfg["architecture"] == arch  # each built on its own instance of the base
        assert cfg["config"].get("Labels", {}).get("arch") == (FOREIGN if arch == FOREIGN else None)
        files = tool(["skopeo", "--insecure-policy", "inspect", "--raw", f"oci:{bases['multi']}:latest"]).stdout
        assert files
    # repeated --platform flags, and --all-platforms (what the base offers), name the same pair
    imagetool("build", "--platform", f"linux/{HOST_ARCH}", "--platform", f"linux/{FOREIGN}", "--manifest", "again",
              str(ctx))
    imagetool("build", "--all-platforms", "--manifest", "all", str(ctx))
    for name in ("again", "all"):
        found = json.loads(imagetool("manifest", "inspect", name).stdout)
        assert sorted(m["digest"] for m in found["manifests"]) == sorted(m["digest"] for m in listed["manifests"])
    assert "--all-platforms" in one_line_error(imagetool("build", "--all-platforms", "--arch", "arm64", str(ctx),
                                                         check=False))


def test_foreign_run_refused_copy_only_built(tmp_path: Path, local_store: Path, bases: dict[str, Path],
                                             qemu_arm64: object) -> None:
    # the "foreign" instance holds this machine's busybox: with an emulator registered, the kernel would
    # still run it natively, under the foreign label; the step is refused instead
    runs = _context(tmp_path, f"FROM oci:{bases['multi']}:latest\nRUN echo hi > /x\n", "runs")
    bad = imagetool("build", "--platform", f"linux/{FOREIGN}", "-t", "nope", str(runs), check=False)
    line = one_line_error(bad)
    assert bad.returncode != 0 and f"/bin/sh is a linux/{HOST_ARCH} program" in line and "RUN echo hi" in line
    assert "nope" not in imagetool("images").stdout
    copies = _context(tmp_path, f"FROM oci:{bases['multi']}:latest\nCOPY a.txt /\n", "copies")
    imagetool("build", "--arch", FOREIGN, "-t", "copied", str(copies))
    cfg = _config(local_store, "copied")
    assert cfg["architecture"] == FOREIGN and cfg["config"]["Labels"] == {"arch": FOREIGN}
    # `run` refuses to start it too, rather than run this machine's program labelled FOREIGN
    bad = imagetool("run", "--rm", "copied", "uname", "-m", check=False)
    assert bad.returncode == 125 and f"/bin/uname is a linux/{HOST_ARCH} program" in one_line_error(bad)


def test_base_without_the_platform_is_refused(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    # today's bug: an amd64-only base built "for arm64" gave an amd64 image labelled arm64
    ctx = _context(tmp_path, f"FROM oci:{bases['single']}:latest\nCOPY a.txt /\n")
    bad = imagetool("build", "--arch", FOREIGN, "-t", "wrong", str(ctx), check=False)
    assert bad.returncode != 0 and f"no image for linux/{FOREIGN}" in one_line_error(bad)
    # the same through the local store: a bare name holding this machine's image only, never pulled
    imagetool("copy", "-q", f"oci:{bases['single']}:latest", "base")
    (ctx / "Dockerfile").write_text("FROM base\nCOPY a.txt /\n")
    bad = imagetool("build", "--pull", "never", "--platform", f"linux/{FOREIGN}", str(ctx), check=False)
    assert bad.returncode != 0 and f"no image for linux/{FOREIGN}" in one_line_error(bad)
    imagetool("build", "--pull", "never", "--platform", f"linux/{HOST_ARCH}", "-t", "right", str(ctx))
    assert _config(local_store, "right")["architecture"] == HOST_ARCH
    assert imagetool("run", "--rm", "right", "cat", "/a.txt").stdout == "from the context\n"


# -- item 12: --output writes the root filesystem

def test_output_local_and_tar(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"FROM oci:{bases['single']}:latest AS base\nRUN echo built > /built\n"
                             "FROM scratch\nCOPY --from=base /built /bin/busybox /out/\nCOPY a.txt /\n")
    out_dir, bare_dir, tar_file = tmp_path / "out", tmp_path / "bare", tmp_path / "fs.tar"
    imagetool("build", "-o", f"type=local,dest={out_dir}", "--output", str(bare_dir),
              "--output", f"type=tar,dest={tar_file}", "-t", f"oci-archive:{tmp_path}/img.tar:app:1", str(ctx))
    for d in (out_dir, bare_dir):
        assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) == \
            ["a.txt", "out", "out/built", "out/busybox"]
        assert (d / "out" / "built").read_text() == "built\n" and (d / "out" / "busybox").stat().st_mode & 0o111
    with tarfile.open(tar_file) as tar:
        assert sorted(tar.getnames()) == ["a.txt", "out", "out/built", "out/busybox"]
        assert tar.extractfile("a.txt").read() == b"from the context\n"  # type: ignore[union-attr]
    # -t TRANSPORT:NAME writes the image there, buildah's way
    info = json.loads(skopeo("inspect", f"oci-archive:{tmp_path}/img.tar:app:1").stdout)
    assert len(info["Layers"]) == 2
    stdout = subprocess.run([*_imagetool_argv(), "build", "-q", "-o", "-", str(ctx)], capture_output=True,
                            check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(stdout)) as tar:  # -o - : a tar on standard output
        assert "out/built" in tar.getnames()
    # the old meaning of --output (an image destination) is refused with the way to say it now
    bad = imagetool("build", "--output", f"oci:{tmp_path}/layout:v1", str(ctx), check=False)
    assert bad.returncode == 2 and "-t oci:" in one_line_error(bad)


def test_output_several_platforms(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"FROM oci:{bases['multi']}:latest\nARG TARGETARCH\nCOPY a.txt /$TARGETARCH.txt\n")
    out = tmp_path / "out"
    imagetool("build", "--platform", f"linux/{HOST_ARCH},linux/{FOREIGN}", "-o", str(out), str(ctx))
    for arch in (HOST_ARCH, FOREIGN):  # BuildKit's layout: one directory per platform
        assert (out / f"linux_{arch}" / f"{arch}.txt").read_text() == "from the context\n"
        assert (out / f"linux_{arch}" / "bin" / "busybox").is_file()


def _imagetool_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "imagetool"]


# -- item 13: short names

def test_short_names_are_localhost(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"FROM oci:{bases['single']}:latest\nCOPY a.txt /\n")
    out = imagetool("build", "-t", "app", str(ctx)).stdout
    assert "Successfully tagged localhost/app:latest" in out
    names = [n for i in json.loads(imagetool("images", "--json").stdout) for n in i["names"] or []]
    assert "localhost/app:latest" in names and not any(n.startswith("docker.io/") for n in names)
    # a short name finds localhost/NAME first, then docker.io/library/NAME (what a pull stores)
    assert imagetool("run", "--rm", "app", "cat", "/a.txt").stdout == "from the context\n"
    imagetool("copy", "-q", f"oci:{bases['single']}:latest", "docker.io/library/pulled:1")
    assert imagetool("inspect", "-f", "{{.Name}}", "pulled:1").stdout.strip() == "docker.io/library/pulled"
    (ctx / "Dockerfile").write_text("FROM app\nRUN echo more >> /a.txt\nFROM pulled:1\nCOPY --from=0 /a.txt /\n")
    imagetool("build", "--pull", "never", "-t", "app2", str(ctx))
    assert imagetool("run", "--rm", "app2", "cat", "/a.txt").stdout == "from the context\nmore\n"
    imagetool("tag", "app2", "other")
    assert "localhost/other:latest" in imagetool("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    imagetool("rmi", "other", "app")
    names = [n for i in json.loads(imagetool("images", "--json").stdout) for n in i["names"] or []]
    assert "localhost/other:latest" not in names and "localhost/app:latest" not in names
    bad = imagetool("run", "--rm", "missing", "true", check=False)
    assert "localhost/missing:latest" in bad.stderr or "missing" in bad.stderr


def test_from_transports(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    archive, docker_archive, dir_copy = tmp_path / "bb.tar", tmp_path / "bb-docker.tar", tmp_path / "bbdir"
    skopeo("copy", f"oci:{bases['single']}:latest", f"oci-archive:{archive}:bb:1")
    skopeo("copy", f"oci:{bases['single']}:latest", f"docker-archive:{docker_archive}:bb:1")
    skopeo("copy", f"oci:{bases['single']}:latest", f"dir:{dir_copy}")
    for base in (f"oci:{bases['single']}:latest", f"oci-archive:{archive}:bb:1",
                 f"docker-archive:{docker_archive}", f"dir:{dir_copy}"):
        ctx = _context(tmp_path, f"FROM {base}\nRUN echo ran > /ran\n", f"ctx{abs(hash(base))}")
        imagetool("build", "-t", "from-transport", str(ctx))
        assert imagetool("run", "--rm", "from-transport", "cat", "/ran").stdout == "ran\n", base


# -- item 14: images and ps output, as buildah prints it

def test_images_format_and_json_like_buildah(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    imagetool("copy", "-q", f"oci:{bases['single']}:latest", "myimg")
    imagetool("tag", "myimg", "myimg:two")
    listed = json.loads(imagetool("images", "--json").stdout)
    assert list(listed[0]) == ["id", "names", "digest", "createdat", "size", "created", "createdatraw", "readonly",
                               "history"]  # buildah 1.28's keys, in its order
    record = listed[0]
    assert record["names"] == ["localhost/myimg:latest", "localhost/myimg:two"] and len(record["id"]) == 12
    assert record["created"] == 1704067200 and record["createdatraw"] == "2024-01-01T00:00:00Z"
    assert record["size"].endswith(" MB") and record["readonly"] is False
    assert json.loads(imagetool("images", "--format", "json").stdout) == listed
    rows = imagetool("images", "--format", "{{.ID}}|{{.Name}}|{{.Tag}}|{{.Digest}}|{{.CreatedAtRaw}}|{{.Created}}|"
                                           "{{.ReadOnly}}|{{.Size}}|{{.CreatedAt}}").stdout.splitlines()
    digest = record["digest"]
    assert [r.split("|")[:8] for r in rows] == [
        [record["id"], "localhost/myimg", tag, digest, "2024-01-01 00:00:00 +0000 UTC", "1704067200", "false",
         record["size"]] for tag in ("latest", "two")]
    assert rows[0].endswith("years ago")
    random_image(tmp_path / "other", "latest")
    imagetool("copy", "-q", f"oci:{tmp_path}/other:latest", "other")
    only = imagetool("images", "--format", "{{.Name}}:{{.Tag}}", "myimg:two").stdout.split()
    assert only == ["localhost/myimg:latest", "localhost/myimg:two"]  # images IMAGE: that image, all its names
    assert len(json.loads(imagetool("images", "--json", "--no-trunc", "other").stdout)[0]["id"]) == 64


def test_ps_format_and_json(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    imagetool("copy", "-q", f"oci:{bases['single']}:latest", "bb")
    imagetool("run", "--name", "kept", "bb", "sh", "-c", "exit 3", check=False)
    docs = json.loads(imagetool("ps", "--json").stdout)
    assert [{k: d[k] for k in ("id", "builder", "imagename", "containername", "status")} for d in docs] == \
        [{"id": "kept", "builder": False, "imagename": "bb", "containername": "kept", "status": "Exited (3)"}]
    image_id = json.loads(imagetool("images", "--json", "--no-trunc").stdout)[0]["id"]
    assert docs[0]["imageid"] == image_id
    assert imagetool("ps", "--format", "{{.ContainerName}} {{.ImageName}} {{.Status}} {{.Names}}").stdout == \
        "kept bb Exited (3) kept\n"
    assert json.loads(imagetool("ps", "--format", "json").stdout) == docs
    imagetool("rm", "kept")


# -- item 15: --rm, --runtime-flag, unused build args, remote contexts

def test_rm_runtime_flag_and_unused_args(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"ARG USED=1\nFROM oci:{bases['single']}:latest\nARG USED\nRUN echo $USED > /used\n")
    log = tmp_path / "runc.log"
    out = imagetool("build", "--rm=false", "--force-rm=true", "--layers=false", "--build-arg", "USED=2",
                    "--build-arg", "NOBODY=x", "--build-arg", "ALSO=y", "--runtime", "runc", "--runtime-flag", "debug",
                    "--runtime-flag", f"log={log}", "-t", "flags", str(ctx)).stdout
    assert "[Warning] one or more build args were not consumed: [ALSO NOBODY]" in out
    assert imagetool("run", "--rm", "flags", "cat", "/used").stdout == "2\n"
    assert log.is_file() and "level=debug" in log.read_text()  # runc ran with --debug --log=FILE
    for flag in ("--rm=true", "--rm", "--no-rm"):
        imagetool("build", "-q", flag, str(ctx))
    assert "true or false" in imagetool("build", "--rm=maybe", str(ctx), check=False).stderr
    bad = imagetool("build", "--runtime-flag", "debug", str(ctx), check=False)
    assert bad.returncode == 2 and "--runtime runc" in one_line_error(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_remote_tarball_context(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    ctx = _context(tmp_path, f"FROM oci:{bases['single']}:latest\nCOPY a.txt /\nCOPY sub/ /sub/\n")
    (ctx / "sub").mkdir()
    (ctx / "sub" / "b.txt").write_text("b\n")
    (ctx / "Other.Dockerfile").write_text(f"FROM oci:{bases['single']}:latest\nCOPY sub/b.txt /other\n")
    served = tmp_path / "www"
    served.mkdir()
    with tarfile.open(served / "ctx.tar.gz", "w:gz") as tar:
        tar.add(ctx, arcname=".")
    (served / "Dockerfile").write_text(f"FROM oci:{bases['single']}:latest\nRUN echo plain > /plain\n")
    with serve_directory(served) as url:
        imagetool("build", "-t", "remote-tar", f"{url}/ctx.tar.gz")
        assert imagetool("run", "--rm", "remote-tar", "cat", "/a.txt", "/sub/b.txt").stdout == \
            "from the context\nb\n"
        imagetool("build", "-f", "Other.Dockerfile", "-t", "remote-f", f"{url}/ctx.tar.gz")  # -f inside the context
        assert imagetool("run", "--rm", "remote-f", "cat", "/other").stdout == "b\n"
        imagetool("build", "-t", "remote-plain", f"{url}/Dockerfile")  # a Dockerfile alone: an empty context
        assert imagetool("run", "--rm", "remote-plain", "cat", "/plain").stdout == "plain\n"
        bad = imagetool("build", f"{url}/missing.tar", check=False)
        assert bad.returncode != 0 and "HTTP 404" in one_line_error(bad)


def _git(*args: str, cwd: Path) -> str:
    return tool(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd).stdout


def test_remote_git_context(tmp_path: Path, local_store: Path, bases: dict[str, Path]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "Dockerfile").write_text(f"FROM oci:{bases['single']}:latest\nCOPY version /\n")
    (work / "version").write_text("main\n")
    (work / "app").mkdir()
    (work / "app" / "Dockerfile").write_text(f"FROM oci:{bases['single']}:latest\nCOPY . /app/\n")
    (work / "app" / "in-app").write_text("app\n")
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("checkout", "-q", "-b", "feature", cwd=work)
    (work / "version").write_text("feature\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("tag", "v2", cwd=work)
    _git("checkout", "-q", "main", cwd=work)
    served = tmp_path / "served"
    served.mkdir()
    tool(["git", "clone", "-q", "--bare", str(work), str(served / "repo.git")])
    _git("update-server-info", cwd=served / "repo.git")  # what a dumb http server needs
    with serve_directory(served) as url:  # dumb http
        imagetool("build", "-t", "g-main", f"{url}/repo.git")
        assert imagetool("run", "--rm", "g-main", "cat", "/version").stdout == "main\n"
        imagetool("build", "-t", "g-feature", f"{url}/repo.git#feature")
        assert imagetool("run", "--rm", "g-feature", "cat", "/version").stdout == "feature\n"
        imagetool("build", "-t", "g-sub", f"{url}/repo.git#main:app")
        assert imagetool("run", "--rm", "g-sub", "ls", "/app").stdout.split() == ["Dockerfile", "in-app"]
        bad = imagetool("build", f"{url}/repo.git#main:../..", check=False)
        assert bad.returncode != 0 and "leaves the repository" in one_line_error(bad)
    port = _free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
                               f"--port={port}", f"--base-path={served}", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            threading.Event().wait(0.05)
        imagetool("build", "-t", "g-daemon", f"git://127.0.0.1:{port}/repo.git#v2")  # git protocol, a tag
        assert imagetool("run", "--rm", "g-daemon", "cat", "/version").stdout == "feature\n"
        bad = imagetool("build", f"git://127.0.0.1:{port}/repo.git#nosuchref", check=False)
        assert bad.returncode != 0 and "fetching the git context" in one_line_error(bad)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_output_rootless(rootless_user: RootlessUser, bases: dict[str, Path]) -> None:
    """Rootless: the local output is the user's files (BuildKit's local exporter), the tar keeps the image's
    owners; both read through the store's user namespace, where the layers' subordinate ids are."""
    work = rootless_user.mkdtemp()
    shutil.copytree(bases["single"], work / "base")
    ctx = work / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM oci:{work}/base:latest AS b\nRUN mkdir /o && echo x > /o/f && "
                                    "chown -R 1234:5678 /o\nFROM scratch\nCOPY --from=b /o /o\n")
    rootless_user.give(work)
    rootless_user.imagetool("build", "-o", f"{work}/out", "-o", f"type=tar,dest={work}/fs.tar", str(ctx))
    st = (work / "out" / "o" / "f").stat()
    assert (st.st_uid, st.st_gid) == (rootless_user.uid, rootless_user.gid)
    assert (work / "out" / "o" / "f").read_text() == "x\n"
    with tarfile.open(work / "fs.tar") as tar:
        member = tar.getmember("o/f")
        assert (member.uid, member.gid) == (1234, 5678)
