"""A user with no subordinate ids: one id in the user namespace, said once; images needing more refused."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from imagetool import media
from imagetool.digest import Digest
from tests.lib.images import Layer, busybox_files, make_layer, write_image
from tests.lib.rootless import RootlessUser

EXECUTORS = ["embedded", "runc"]
WARNING = "files owned by other ids cannot be represented"


def _owned_layer(name: str, uid: int, gid: int) -> Layer:
    """A layer with one directory `name` owned by uid:gid."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
        tar.addfile(info)
    raw = buf.getvalue()
    return Layer(gzip.compress(raw, mtime=0), Digest.of(raw), media.layer_type(True, "gzip"))


@pytest.fixture(scope="module")
def images(rootless_user_no_ranges: RootlessUser) -> RootlessUser:
    """busybox, and `owned` (busybox plus /home/u owned by 1000:1000), in the user's store."""
    user = rootless_user_no_ranges
    base = user.mkdtemp("images-")
    base_layer = make_layer(busybox_files())
    write_image(base / "busybox", "latest", [base_layer], config={"Cmd": ["/bin/sh"]})
    write_image(base / "owned", "latest", [base_layer, _owned_layer("home/u", 1000, 1000)],
                config={"Cmd": ["/bin/sh"]})
    write_image(base / "group", "latest", [base_layer, _owned_layer("srv", 0, 42)], config={"Cmd": ["/bin/sh"]})
    user.give(base)
    for name in ("busybox", "owned", "group"):
        user.imagetool("copy", "-q", f"oci:{base / name}:latest", name)
    return user


def _snapshots(user: RootlessUser) -> set[str]:
    root = user.store / "snapshots"
    return {str(p) for p in root.rglob("*") if p.is_dir() and p.parent.parent == root} if root.exists() else set()


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if WARNING in line]


@pytest.mark.parametrize("runtime", EXECUTORS)
def test_single_id_map_runs_and_says_so_once(images: RootlessUser, runtime: str) -> None:
    user = images
    proc = user.imagetool("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c",
                          "id -u; cat /proc/self/uid_map /proc/self/gid_map; chown 1000 /tmp || echo chown: refused")
    assert proc.stdout.split("\n")[0] == "0"
    assert proc.stdout.split()[1:7] == ["0", str(user.uid), "1", "0", str(user.gid), "1"]
    assert proc.stdout.splitlines()[-1] == "chown: refused"
    [line] = _warnings(proc.stderr)
    assert line.startswith("imagetool: warning: ") and "subordinate" in line and str(user.uid) in line


@pytest.mark.parametrize("runtime", EXECUTORS)
def test_build_warns_once_for_all_its_steps(images: RootlessUser, runtime: str) -> None:
    user = images
    context = user.mkdtemp("ctx-")
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nRUN cat /one /two\n")
    user.give(context)
    proc = user.imagetool("build", "--no-cache", "--runtime", runtime, str(context))
    assert "one\ntwo\n" in proc.stdout
    assert len(_warnings(proc.stderr)) == 1, proc.stderr


@pytest.mark.parametrize("image,owner", [("owned", "/home/u is owned by uid 1000"),
                                         ("group", "/srv is owned by gid 42")])
@pytest.mark.parametrize("runtime", EXECUTORS)
def test_run_refuses_an_image_with_other_owners(images: RootlessUser, runtime: str, image: str, owner: str) -> None:
    user = images
    before = _snapshots(user)
    proc = user.imagetool("run", "--rm", "--runtime", runtime, image, "true", check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert owner in line and "no subordinate ids" in line, line
    assert _snapshots(user) == before  # refused before any layer was unpacked


@pytest.mark.parametrize("runtime", EXECUTORS)
def test_build_refuses_a_base_with_other_owners(images: RootlessUser, runtime: str) -> None:
    user = images
    context = user.mkdtemp("ctx-")
    (context / "Dockerfile").write_text("FROM owned\nRUN echo ran\n")
    user.give(context)
    proc = user.imagetool("build", "--no-cache", "--runtime", runtime, str(context), check=False)
    assert proc.returncode != 0 and "ran" not in proc.stdout.splitlines()
    [line] = proc.stderr.splitlines()
    assert "/home/u is owned by uid 1000" in line, line


@pytest.mark.parametrize("runtime", EXECUTORS)
def test_user_outside_the_map_is_a_one_line_error(images: RootlessUser, runtime: str) -> None:
    proc = images.imagetool("run", "--rm", "--runtime", runtime, "--user", "1000:1000", "busybox", "id", check=False)
    assert proc.returncode == 125 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if WARNING not in line]
    assert errors == [errors[0]] and "uid 1000" in errors[0] and "not mapped" in errors[0], proc.stderr


@pytest.mark.parametrize("runtime", EXECUTORS)
def test_without_newuidmap_a_user_with_ranges_gets_one_id(rootless_user: RootlessUser, runtime: str,
                                                          busybox_layout: Path) -> None:
    """Ranges need the setuid helpers: without them on PATH, the single-id map, said once."""
    user = rootless_user
    user.imagetool("copy", "-q", f"oci:{busybox_layout}:latest", "busybox")
    env = {"PATH": "/nonexistent", "IMAGETOOL_RUNC": shutil.which("runc") or "runc",
           "IMAGETOOL_SLIRP4NETNS": shutil.which("slirp4netns") or "slirp4netns"}
    proc = user.imagetool("run", "--rm", "--runtime", runtime, "busybox", "cat", "/proc/self/uid_map", env=env)
    assert proc.stdout.split() == ["0", str(user.uid), "1"]
    [line] = _warnings(proc.stderr)
    assert "newuidmap/newgidmap are not installed" in line
