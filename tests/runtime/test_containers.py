"""Containers kept after `run` without --rm: `ps` lists them with their state, `rm` removes them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from tests.lib.cli import imagetool, one_line_error


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_ps_and_rm(busybox: str, local_store: Path) -> None:
    imagetool("run", "--name", "ok", busybox, "true")
    failed = imagetool("run", "--name", "bad", busybox, "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    imagetool("run", "--rm", "--name", "gone", busybox, "true")
    sleeper = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--name", "busy", busybox, "sleep", "30"],
                               env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            rows = _rows(imagetool("ps").stdout)
            if "busy" in rows and "Running" in rows["busy"]:
                break
            time.sleep(0.1)
        assert "Exited (0)" in rows["ok"] and "Exited (3)" in rows["bad"] and "Running" in rows["busy"]
        assert rows["bad"].split()[1] == busybox and "gone" not in rows
        assert "running" in one_line_error(imagetool("rm", "busy", check=False))
        assert "no container named 'nope'" in one_line_error(imagetool("rm", "nope", check=False))
        assert imagetool("rm", "ok").stdout == "ok\n"
        assert not (local_store / "containers" / "ok").exists()
        assert imagetool("rm", "--all").stdout == "bad\n"  # the running one stays
        assert imagetool("ps", "-q").stdout == "busy\n"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)
    for _ in range(100):  # the executor tears down after its parent is gone
        if "Running" not in imagetool("ps").stdout:
            break
        time.sleep(0.1)
    imagetool("rm", "--all")
    assert imagetool("ps", "-q").stdout == ""


def test_a_killed_run_takes_its_container_with_it(busybox: str, local_store: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    sleep = f"sleep 300.{os.getpid()}{random.randrange(10**6):06d}"  # no other test's process has this command line
    run = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--rm", "-v", f"{tmp_path}:/out", busybox,
                            "sh", "-c", f"{sleep} & echo $! > /out/pids; wait"], stdout=subprocess.DEVNULL)
    for _ in range(200):
        if marker.exists() and marker.read_text().strip():
            break
        time.sleep(0.05)
    inside = subprocess.run(["pgrep", "-x", "-f", sleep], capture_output=True, text=True).stdout.split()
    assert inside, "the container did not start"
    run.kill()
    run.wait(timeout=30)
    for _ in range(100):
        left = subprocess.run(["pgrep", "-x", "-f", sleep], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.05)
    assert not left, "the container outlived the killed run"
