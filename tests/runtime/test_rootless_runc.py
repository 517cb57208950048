"""Rootless `--runtime runc`: runc in a user namespace of ours gives the embedded executor's answers."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.lib.probes import Prober, Way, ways
from tests.lib.processes import in_terminal, pids, start, wait_until
from tests.lib.rootless import PYTHON, RootlessUser
from tests.runtime.test_runc import PROBES

#: what differs for an unprivileged user: the host network (sysfs bound, not mounted), ids from the ranges
ROOTLESS_PROBES = [
    (["--network", "host"], "ls /sys/class/net | grep -c '^lo$'; grep -c ' /sys ' /proc/mounts"),
    (["--user", "1000:1000"], "id; touch /tmp/f; ls -ln /tmp/f | awk '{print $3, $4}'; ls -ln /dev/pts"),
    ([], "mkdir -p /home/x; chown 123:456 /home/x; ls -lnd /home/x | awk '{print $3, $4}'; cat /proc/self/gid_map"),
]
#: the `run` flags a build takes too (the others have no build equivalent)
BUILD_FLAGS = {"--network", "--cap-add", "--cap-drop", "--ulimit", "--dns", "--dns-search", "--dns-option",
               "--add-host"}


def _rows() -> list[object]:
    rows = []
    for param in ways(executor="runc", rootless=True):
        way = param.values[0]  # type: ignore[attr-defined]
        for n, (flags, script) in enumerate(PROBES + ROOTLESS_PROBES):
            if way.mode == "build" and not {f for f in flags if f.startswith("-")} <= BUILD_FLAGS:
                continue
            rows.append(pytest.param(way, flags, script, id=f"{way.id}-{n}"))
    return rows


@pytest.mark.parametrize("way,flags,script", _rows())
def test_rootless_runc_agrees_with_embedded(prober: Prober, way: Way, flags: list[str], script: str) -> None:
    if way.mode == "build":  # runc copies the two streams apart: one stream keeps their order in the step log
        script = f"exec 2>&1; {script}"
    runc = prober.probe(way, script, flags=tuple(flags))
    embedded = prober.probe(Way("embedded", True, way.mode), script, flags=tuple(flags))
    assert (runc.code, runc.out) == (embedded.code, embedded.out), runc.stderr
    if "exit 23" not in script and "no-such" not in f"{script} {flags}":
        assert runc.code == 0 and runc.out, runc.stderr  # an answer, not two equal failures


def _spawn(user: RootlessUser, *args: str) -> subprocess.Popen[str]:
    """`imagetool ARGS` as `user`, in the background."""
    return start(user.argv([str(PYTHON), "-m", "imagetool", *args]), cwd=user.home)


def _runc_state(user: RootlessUser) -> list[str]:
    state = user.home / "run" / "imagetool" / "runc"
    return sorted(os.listdir(state)) if state.exists() else []


@pytest.fixture
def rootless_busybox(prober: Prober, rootless_user: RootlessUser) -> RootlessUser:
    prober.user = rootless_user
    prober._ensure_image(True)
    return rootless_user


@pytest.mark.parametrize("way", ways(executor="runc", rootless=True, mode="run"))
def test_signal_reaches_the_command_and_nothing_is_left(way: Way, rootless_busybox: RootlessUser) -> None:
    """SIGTERM to `imagetool run` reaches the command through runc; then no state, mount or process remains."""
    user = rootless_busybox
    marker = f"imagetool-probe-{os.getpid()}"
    before = set(_runc_state(user))  # another test's killed run may have left one: not this run's doing
    proc = _spawn(user, "run", "--rm", "--runtime", "runc", "busybox", "sh", "-c",
                  f"trap 'echo got TERM; exit 7' TERM; echo {marker} >/dev/null; echo ready; "
                  "while :; do sleep 0.1; done")
    try:
        wait_until(lambda: pids(marker.encode(), user.uid) if _runc_state(user) else [])
        time.sleep(0.5)  # the trap is set once the shell runs its loop
        imagetool_pid = wait_until(lambda: pids(b"-m\0imagetool\0run\0", user.uid))[0]
        os.kill(imagetool_pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (7, "ready\ngot TERM\n"), err
    assert set(_runc_state(user)) <= before
    assert not pids(marker.encode(), user.uid)
    with open("/proc/self/mounts") as f:
        assert "imagetool-bundle-" not in f.read()


@pytest.mark.parametrize("way", ways(executor="runc", rootless=True, mode="run"))
def test_killed_command_exits_128_plus_signal(way: Way, rootless_busybox: RootlessUser) -> None:
    user = rootless_busybox
    seconds = str(6000 + os.getpid() % 1000)
    before = set(_runc_state(user))
    proc = _spawn(user, "run", "--rm", "--runtime", "runc", "busybox", "sleep", seconds)
    try:
        pid = wait_until(lambda: pids(b"sleep\0" + seconds.encode() + b"\0", user.uid))[0]
        os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGKILL, err
    assert set(_runc_state(user)) <= before


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_volumes_rootless(rootless_busybox: RootlessUser, runtime: str) -> None:
    user = rootless_busybox
    rw, ro = user.mkdtemp("rw-"), user.mkdtemp("ro-")
    (rw / "in.txt").write_text("from host")
    user.give(rw)
    proc = user.imagetool("run", "--rm", "--runtime", runtime, "-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro", "busybox",
                          "sh", "-c", "cat /data/in.txt; echo; echo back > /data/out.txt; "
                          "touch /ro/x 2>/dev/null && echo RO-WRITTEN; echo ok")
    assert proc.stdout.splitlines() == ["from host", "ok"]
    assert (rw / "out.txt").read_text() == "back\n" and (rw / "out.txt").stat().st_uid == user.uid
    assert not (ro / "x").exists()


def test_terminal_rootless_runc(rootless_busybox: RootlessUser) -> None:
    user = rootless_busybox
    out, code = in_terminal(user.argv([str(PYTHON), "-m", "imagetool", "run", "--rm", "-it", "--runtime", "runc",
                                       "busybox", "sh", "-c", "read x; echo got-$x; tty; exit 3"],
                                      env={"TERM": "xterm"}), typed=b"typed\r", quiet=20)
    assert b"got-typed\r\n/dev/pts/0" in out, out
    assert code == 3


def test_run_mounts_in_a_rootless_runc_build(rootless_busybox: RootlessUser) -> None:
    """Cache, context and image mounts (an overlay in the spec, mounted by runc in our namespace)."""
    user = rootless_busybox
    context = user.mkdtemp("ctx-")
    (context / "f.txt").write_text("ctx file\n")
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=cache,target=/cache sh -c 'echo x > /cache/c; cat /cache/c'\n"
        "RUN --mount=type=bind,target=/src cat /src/f.txt\n"
        "RUN --mount=type=bind,from=busybox,target=/bb,rw touch /bb/x && ls /bb | wc -l\n"
        "RUN --network=none ls /sys/class/net\n")
    user.give(context)
    logs = {}
    for runtime in ("embedded", "runc"):
        out = user.imagetool("build", "--no-cache", "--runtime", runtime, str(context)).stdout.splitlines()
        logs[runtime] = [line for line in out if not line.startswith("-->")]
    assert logs["runc"] == logs["embedded"]
    assert ["x", "ctx file", "8", "lo"] == [line for line in logs["runc"] if not line.startswith(("STEP", "COMMIT"))]
