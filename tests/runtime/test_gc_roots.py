"""Containers are gc roots: what a kept or running container uses stays until the container is removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.lib.cli import imagetool
from tests.lib.images import busybox_files, make_layer, write_image


def _two_images(tmp_path: Path) -> None:
    """busybox with a file of its own in each of two layouts (so each has a layer no other image has)."""
    for n in (1, 2):
        files = busybox_files()
        files[f"data/file{n}"] = f"content {n}\n"
        write_image(tmp_path / f"img{n}", "v1", [make_layer(files)])


def _snapshots(store: Path) -> set[str]:
    root = store / "snapshots" / "sha256"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def _ps() -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in imagetool("ps").stdout.splitlines()[1:]}


def _image_id(name: str) -> str:
    return next(i["id"] for i in json.loads(imagetool("images", "--json", "--no-trunc").stdout)
                if name in (i["names"] or []))


def test_a_kept_container_keeps_its_image_through_retag_and_prune(tmp_path: Path, local_store: Path) -> None:
    _two_images(tmp_path)
    imagetool("copy", "-q", f"oci:{tmp_path}/img1:v1", "localhost/app:1")
    old_id = _image_id("localhost/app:1")
    imagetool("run", "--name", "keep", "localhost/app:1", "sh", "-c", "echo kept > /note")
    used = _snapshots(local_store)
    assert _ps()["keep"][1] == "localhost/app:1"
    imagetool("copy", "-q", f"oci:{tmp_path}/img2:v1", "localhost/app:1")  # a rebuild takes the name
    imagetool("prune")
    imagetool("delete", old_id)  # out of index.json altogether: the container still holds it
    imagetool("prune")
    assert old_id not in imagetool("images", "-q", "--no-trunc").stdout
    assert used <= _snapshots(local_store)
    assert _ps()["keep"][1] == old_id[:12]  # the name now means another image: ps shows the ID
    imagetool("commit", "keep", "localhost/kept:1")
    out = imagetool("run", "--rm", "localhost/kept:1", "cat", "/note", "/data/file1").stdout
    assert out == "kept\ncontent 1\n"
    imagetool("rm", "keep")
    imagetool("rmi", "localhost/kept:1")
    imagetool("prune")
    assert not used & _snapshots(local_store)
    assert imagetool("images", "-q").stdout.split() == [_image_id("localhost/app:1")[:12]]


def test_a_running_container_keeps_its_lower_dirs(tmp_path: Path, local_store: Path) -> None:
    _two_images(tmp_path)
    imagetool("copy", "-q", f"oci:{tmp_path}/img1:v1", "localhost/app:1")
    share = tmp_path / "share"
    share.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--rm", "-v", f"{share}:/out",
                            "localhost/app:1", "sh", "-c",
                            "touch /out/started; while [ ! -e /out/go ]; do sleep 0.05; done; cat /data/file1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        for _ in range(400):
            if (share / "started").exists() or run.poll() is not None:
                break
            time.sleep(0.05)
        assert (share / "started").exists(), run.stderr.read() if run.stderr else ""
        old_id = _image_id("localhost/app:1")
        imagetool("copy", "-q", f"oci:{tmp_path}/img2:v1", "localhost/app:1")
        imagetool("rmi", "--prune")
        imagetool("delete", old_id)
        imagetool("prune")
        (share / "go").touch()
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 0, err
    assert out == b"content 1\n"
    imagetool("prune")  # the container is gone: so is what only it used
    assert imagetool("images", "-q", "--filter", "dangling=true").stdout == ""
