"""The runc executor runs the same spec: every probe gives the same answer under both executors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error

PROBES = [
    ([], "echo $$; hostname; id; pwd; ls /; cat /etc/hosts"),
    ([], "ps -o comm > /tmp/ps; cat /tmp/ps"),
    ([], "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; ulimit -n"),
    ([], "cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; echo x > /proc/sysrq-trigger || echo denied"),
    (["--user", "nobody"], "id; echo $HOME; grep CapEff /proc/self/status"),
    (["--network", "none"], "ls /sys/class/net"),
    (["-w", "/tmp", "-e", "A=b", "--hostname", "h1"], "pwd; echo $A; hostname; env | sort"),
    ([], "grep -E '^Sig(Blk|Ign)' /proc/self/status; yes | head -1; echo $?"),
    (["--cap-drop", "all", "--cap-add", "net_raw", "--ulimit", "nofile=100:200", "--ulimit", "core=-1",
      "--tmpfs", "/scratch:size=1m"],
     "grep -E '^Cap(Eff|Bnd)' /proc/self/status; ulimit -n; ulimit -Hn; ulimit -c; grep /scratch /proc/mounts"),
    (["--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:2", "--add-host",
      "db.test:192.0.2.7"], "cat /etc/resolv.conf; tail -n 1 /etc/hosts"),
    ([], "exit 23"),
    ([], "no-such-command"),
    (["--user", "no-such-user"], "true"),
]


@pytest.mark.parametrize("flags,script", PROBES)
def test_runc_and_embedded_agree(busybox: str, flags: list[str], script: str, tmp_path: Path) -> None:
    results = {}
    for runtime in ("embedded", "runc"):
        proc = imagetool("run", "--rm", "--runtime", runtime, *flags, busybox, "sh", "-c", script, check=False)
        results[runtime] = (proc.returncode, proc.stdout)
    assert results["embedded"] == results["runc"]


def test_volumes_under_runc(busybox: str, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("shared")
    out = imagetool("run", "--rm", "--runtime", "runc", "-v", f"{tmp_path}:/v:ro", busybox, "sh", "-c",
                    "cat /v/in; touch /v/new 2>/dev/null || echo ro").stdout
    assert out == "sharedro\n"
    assert not (tmp_path / "new").exists()


def test_runc_isolation_details(busybox: str, tmp_path: Path) -> None:
    """Under runc too: PID 1 sees only its own processes, host paths are invisible, masks and caps hold."""
    marker = tmp_path / "host-marker"
    marker.write_text("secret")
    out = imagetool("run", "--rm", "--runtime", "runc", busybox, "sh", "-c",
                    "echo $$; ps -o comm > /tmp/ps; tail -n +2 /tmp/ps | sort | tr '\\n' ' '; echo;"
                    f"test -e {marker} && echo VISIBLE; test -e /work && echo WORK;"
                    "cat /proc/kcore 2>/dev/null | wc -c; echo b > /proc/sysrq-trigger 2>/dev/null || echo denied;"
                    "grep CapEff /proc/self/status").stdout.splitlines()
    assert out[0] == "1"
    assert out[1].split() == ["ps", "sh"]
    assert "VISIBLE" not in out and "WORK" not in out
    assert out[2:4] == ["0", "denied"]
    cap_sys_admin = 1 << 21
    assert not int(out[4].split()[1], 16) & cap_sys_admin


def _runc_containers() -> list[str]:
    proc = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True, check=True)
    return [name for name in proc.stdout.split() if name.startswith("imagetool-")]


def test_rm_under_runc_leaves_nothing(busybox: str, local_store: Path) -> None:
    before = _runc_containers()
    imagetool("run", "--rm", "--runtime", "runc", busybox, "sh", "-c", "echo data > /etc/added; rm /bin/ls")
    out = imagetool("run", "--rm", "--runtime", "runc", busybox, "sh", "-c",
                    "test -e /etc/added && echo PERSISTED; test -e /bin/ls && echo LS-BACK").stdout
    assert out.split() == ["LS-BACK"]
    containers = local_store / "containers"
    assert not containers.exists() or not any(containers.iterdir())
    assert _runc_containers() == before
    with open("/proc/self/mounts") as f:
        assert "imagetool-bundle-" not in f.read()


def test_stdin_under_runc(busybox: str) -> None:
    data = b"runc input\n" * 2000
    proc = imagetool("run", "--rm", "-i", "--runtime", "runc", busybox, "sha256sum", input=data)
    assert proc.stdout.split()[0] == hashlib.sha256(data).hexdigest()


def _pid_of(argv: bytes, timeout: float = 20) -> int:
    """The host PID of the process whose command line is exactly `argv` (NUL-separated)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if f.read() == argv:
                            return int(entry)
                except OSError:
                    continue
        time.sleep(0.05)
    raise AssertionError(f"no process {argv!r}")


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_killed_container_exits_128_plus_signal(busybox: str, runtime: str) -> None:
    """A command killed by a signal (here from the host, as the OOM killer would) ends `run` with 128+N."""
    seconds = str(5000 + os.getpid() % 1000)
    proc = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--rm", "--runtime", runtime, busybox,
                             "sleep", seconds], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        os.kill(_pid_of(b"sleep\0" + seconds.encode() + b"\0"), signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGKILL


def test_init_under_runc_is_refused_in_one_line(busybox: str) -> None:
    """runc has no reaper of ours to put at PID 1: --init says so rather than running without one."""
    proc = imagetool("run", "--rm", "--init", "--runtime", "runc", busybox, "true", check=False)
    assert proc.returncode == 125
    assert "--init is not available with --runtime runc" in one_line_error(proc)
