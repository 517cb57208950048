"""`imagetool commit`: a kept container's changes become a layer on its image; umoci and runc run the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.lib.bundles import runc_run, umoci_unpack
from tests.lib.cli import imagetool, one_line_error


def test_commit_a_kept_container(busybox: str, local_store: Path, tmp_path: Path) -> None:
    imagetool("run", "--name", "work", busybox, "sh", "-c", "echo hi > /root/note; rm /etc/group")
    out = imagetool("commit", "--change", 'CMD ["cat", "/root/note"]', "--change", "ENV ADDED=1", "-m", "a note",
                    "--iidfile", str(tmp_path / "iid"), "work", "localhost/committed:1").stdout.strip()
    assert (tmp_path / "iid").read_text() == f"sha256:{out}"
    assert imagetool("run", "--rm", "localhost/committed:1").stdout == "hi\n"
    assert imagetool("run", "--rm", "localhost/committed:1", "ls", "/etc/group", check=False).returncode != 0

    config = json.loads(imagetool("inspect", "--config", "localhost/committed:1").stdout)
    base = json.loads(imagetool("inspect", "--config", busybox).stdout)
    assert config["rootfs"]["diff_ids"][:-1] == base["rootfs"]["diff_ids"]
    assert config["config"]["Cmd"] == ["cat", "/root/note"] and "ADDED=1" in config["config"]["Env"]
    assert config["history"][-1]["created_by"] == "sh -c 'echo hi > /root/note; rm /etc/group'"
    assert config["history"][-1]["comment"] == "a note"
    # the new layer holds the change and the whiteout, not the runtime's mountpoints (/etc/hosts, ...)
    manifest = json.loads(imagetool("inspect", "--raw", "localhost/committed:1").stdout)
    blob = local_store / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    with tarfile.open(blob) as tar:
        assert sorted(m.name for m in tar.getmembers() if not m.isdir()) == ["etc/.wh.group", "root/note"]
    # peers run it: umoci unpacks the image, runc runs the bundle
    bundle = umoci_unpack(local_store, "localhost/committed:1", tmp_path / "bundle")
    assert runc_run(bundle) == "hi\n"
    # --rm removes the container once committed
    imagetool("commit", "--rm", "work", "localhost/committed:2")
    assert imagetool("ps", "-q").stdout == ""


def test_commit_refuses_running_and_missing_containers(busybox: str, local_store: Path) -> None:
    assert "no container named 'nope'" in one_line_error(imagetool("commit", "nope", "x", check=False))
    sleeper = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--name", "busy", busybox, "sleep", "30"],
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if "Running" in imagetool("ps").stdout:
                break
            time.sleep(0.1)
        busy = imagetool("commit", "busy", "localhost/busy:1", check=False)
        assert busy.returncode != 0 and "is running" in one_line_error(busy)
        assert "localhost/busy " not in imagetool("images").stdout
    finally:
        sleeper.kill()
        sleeper.wait()


def test_rmi_keeps_images_that_kept_containers_need(busybox: str, local_store: Path) -> None:
    imagetool("run", "--name", "keep", busybox, "true")
    imagetool("tag", busybox, "localhost/alias:1")
    imagetool("rmi", "localhost/alias:1")  # another name goes; the image stays
    for argv in (["rmi", busybox], ["rmi", "--all"]):
        refused = imagetool(*argv, check=False)
        assert refused.returncode != 0 and "used by the container(s) keep" in one_line_error(refused)
    assert "busybox" in imagetool("images").stdout and imagetool("ps", "-q").stdout == "keep\n"
    imagetool("commit", "keep", "localhost/still-works:1")
    imagetool("rmi", "--force", busybox)
    assert imagetool("ps", "-q").stdout == "" and "localhost/busybox " not in imagetool("images").stdout
