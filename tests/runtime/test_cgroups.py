"""Resource limits through cgroups: each container and RUN step in its own, under both executors.

Every probe runs as `imagetool run` and as a build RUN step, under the embedded executor and runc,
and must print the same lines: the limits read back inside, a fork bomb stopped by --pids-limit,
an allocation past --memory killed, a block device node the container made itself unusable. The
container's cgroup directories must be gone once it has ended. An unprivileged user without a
delegated cgroup runs without limits and is told so once.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagetool.errors import ContainerError
from imagetool.runtime import cgroups
from imagetool.runtime.resources import DEFAULT_PIDS_LIMIT
from tests.lib.cli import imagetool, one_line_error
from tests.lib.probes import Prober, Way, ways
from tests.lib.rootless import RootlessUser

#: a cgroup v2 host (else the v1 controllers of a legacy or hybrid one)
V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
#: whether the kernel accounts swap in memory cgroups (else --memory-swap is dropped, as runc needs)
SWAP = any(Path("/sys/fs/cgroup").glob("*/memory.swap.max")) if V2 else \
    os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def swap_line(total: int) -> str:
    return f"memory+swap: {total if SWAP else 'none'}"

#: the limits as the container reads them back, the same on v1 and v2
READ_LIMITS = r"""
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  echo "memory: $(cat /sys/fs/cgroup/memory.max)"
  swap=/sys/fs/cgroup/memory.swap.max
  [ -e $swap ] && echo "memory+swap: $(( $(cat /sys/fs/cgroup/memory.max) + $(cat $swap) ))" || echo "memory+swap: none"
  echo "pids: $(cat /sys/fs/cgroup/pids.max)"
  echo "cpu: $(cat /sys/fs/cgroup/cpu.max)"
  echo "weight: $(cat /sys/fs/cgroup/cpu.weight)"
else
  echo "memory: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  swap=/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes
  [ -e $swap ] && echo "memory+swap: $(cat $swap)" || echo "memory+swap: none"
  echo "pids: $(cat /sys/fs/cgroup/pids/pids.max)"
  echo "cpu: $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
  echo "shares: $(cat /sys/fs/cgroup/cpu/cpu.shares)"
fi
limit=/sys/fs/cgroup/pids.max; [ -e $limit ] || limit=/sys/fs/cgroup/pids/pids.max
echo "cgroup-fs: $(touch $limit 2>/dev/null && echo writable || echo read-only)"
sed -n 's/^\([0-9]*\):\([^:]*\):/cgroup \2 /p' /proc/self/cgroup
"""


def _cgroup_lines(out: str) -> dict[str, str]:
    """`cgroup <hierarchy> <path>` lines of a probe -> {hierarchy: path}."""
    found = {}
    for line in out.splitlines():
        if line.startswith("cgroup "):
            _, names, path = (line.split(" ", 2) + [""])[:3]
            if path == "":  # the unified hierarchy has no name: "cgroup  /path"
                names, path = "", line[len("cgroup  "):]
            found[names] = path
    return found


def _host_dirs(paths: dict[str, str]) -> list[Path]:
    """The host directories of the cgroups a container was in."""
    mounts = {h.key: h for h in cgroups.hierarchies()}
    return [Path(mounts[key].mountpoint + path) for key, path in paths.items() if key in mounts]


def _container_dirs(under: str = "") -> set[Path]:
    """The container cgroups that exist now, in every hierarchy."""
    return {d for h in cgroups.hierarchies() for d in Path(h.mountpoint + under + "/imagetool").glob("*")
            if d.is_dir()}


def _assert_own_and_removed(out: str, before: set[Path], under: str = "") -> None:
    """Inside, every hierarchy's path is the root of the container's cgroup namespace (its own cgroup,
    joined before the namespace was made); after, no container cgroup is left that was not there before
    (one with processes in it belongs to a container running beside the test, not to this one)."""
    paths = _cgroup_lines(out)
    assert paths and set(paths.values()) == {"/"}, out
    left = [d for d in _container_dirs(under) - before if not _has_processes(d)]
    assert not left, f"cgroup directories left behind: {left}"


def _rmdir_when_empty(cgroup: Path) -> None:
    """rmdir once the last process has left (a container's slirp4netns ends a few ms after its command)."""
    deadline = time.monotonic() + 10
    while cgroup.exists() and _has_processes(cgroup) and time.monotonic() < deadline:
        time.sleep(0.05)
    if cgroup.exists():
        cgroup.rmdir()


def _has_processes(cgroup: Path) -> bool:
    try:
        return bool((cgroup / "cgroup.procs").read_text().strip())
    except FileNotFoundError:  # removed since it was listed: its container ended and cleaned up
        return True


@pytest.mark.parametrize("way", ways(rootless=False))
def test_limits_read_back_inside_and_the_cgroup_is_removed(way: Way, prober: Prober) -> None:
    flags = ("--memory", "64m", "--memory-swap", "96m", "--cpus", "0.5", "--cpu-shares", "256",
             "--pids-limit", "100")
    before = _container_dirs()
    result = prober.probe(way, READ_LIMITS, flags=flags)
    assert result.code == 0, result.stderr
    expected = ["memory: 67108864", swap_line(96 << 20), "pids: 100", "cpu: 50000 100000",
                "weight: 10" if V2 else "shares: 256", "cgroup-fs: read-only"]
    assert result.lines[:6] == expected
    _assert_own_and_removed(result.out, before)
    if not V2:
        names = set(_cgroup_lines(result.out))
        assert {"memory", "pids", "cpu", "devices"} <= names


@pytest.mark.parametrize("way", ways(rootless=False))
def test_default_pids_limit_is_podmans(way: Way, prober: Prober) -> None:
    before = _container_dirs()
    result = prober.probe(way, READ_LIMITS)
    assert result.code == 0, result.stderr
    assert f"pids: {DEFAULT_PIDS_LIMIT}" in result.lines
    assert "memory: max" in result.lines if V2 else int(result.lines[0].split()[1]) > 1 << 40
    _assert_own_and_removed(result.out, before)


#: forks 40 sleepers in a subshell (which dies when fork fails); counts the container's processes
#: with the shell's own globbing, since no further fork may be possible; then clears them away
FORK_BOMB = r"""
(i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null
set -- /proc/[0-9]*
echo "processes: $#"
kill -9 -1; wait
(true) && echo "fork after: ok"
"""


@pytest.mark.parametrize("way", ways(rootless=False))
def test_fork_bomb_stops_at_the_pids_limit(way: Way, prober: Prober) -> None:
    result = prober.probe(way, FORK_BOMB, flags=("--pids-limit", "20"))
    assert result.code == 0, result.stderr
    # 20 tasks: the shell, the subshell and 18 sleepers; the subshell has died since
    assert result.lines == ["processes: 19", "fork after: ok"]


@pytest.mark.parametrize("way", ways(rootless=False))
def test_unlimited_pids_without_the_limit(way: Way, prober: Prober) -> None:
    result = prober.probe(way, FORK_BOMB, flags=("--pids-limit", "-1"))
    assert result.code == 0, result.stderr
    assert result.lines == ["processes: 41", "fork after: ok"]


#: busybox tail keeps a line in memory until its newline comes: 100 MB of zeros are one line
#: the allocating pipeline runs in a subshell that asks to be the OOM killer's first choice (raising one's own
#: oom_score_adj needs no privilege): the kernel may otherwise pick the probe's shell, and the whole step with it
ALLOCATE = r"""
(echo 1000 > /proc/self/oom_score_adj; head -c 100m /dev/zero | tail > /dev/null) 2>/dev/null
echo "status: $?"
"""


@pytest.mark.parametrize("way", ways(rootless=False))
def test_memory_limit_kills_what_goes_past_it(way: Way, prober: Prober) -> None:
    limited = prober.probe(way, ALLOCATE, flags=("--memory", "32m"))
    assert limited.code == 0, limited.stderr
    assert limited.lines == ["status: 137"]
    free = prober.probe(way, ALLOCATE)
    assert free.lines == ["status: 0"]


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_out_of_memory_container_exits_137(runtime: str, busybox: str) -> None:
    proc = imagetool("run", "--rm", "--runtime", runtime, "--memory", "32m", busybox, "sh", "-c",
                     "head -c 100m /dev/zero | tail", check=False)
    assert proc.returncode == 137, proc.stderr


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A read-only loop device over a file of ours holding a marker: (major, minor)."""
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.write(b"LOOP-MARKER\n")
        f.truncate(1 << 20)
    device = subprocess.run(["losetup", "-r", "-f", "--show", str(backing)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        rdev = os.stat(device).st_rdev
        yield os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", device], check=True)


@pytest.mark.parametrize("way", ways(rootless=False))
def test_device_nodes_made_inside_are_unusable(way: Way, prober: Prober, loop_device: tuple[int, int]) -> None:
    major, minor = loop_device
    script = f"""
mknod /tmp/blk b {major} {minor} && echo "mknod: ok" || echo "mknod: denied"
grep -q LOOP-MARKER /tmp/blk 2>/dev/null && echo "read: allowed" || echo "read: denied"
echo x > /dev/null && head -c 4 /dev/zero | wc -c | sed 's/^/standard nodes: /'
if [ -e /sys/fs/cgroup/devices/devices.list ]; then
  grep -qx 'a \\*:\\* rwm' /sys/fs/cgroup/devices/devices.list && echo "devices: all" || echo "devices: listed"
  grep -qx 'c 1:3 rwm' /sys/fs/cgroup/devices/devices.list && echo "null: listed"
fi
"""
    result = prober.probe(way, script)
    assert result.code == 0, result.stderr
    expected = ["mknod: ok", "read: denied", "standard nodes: 4"]
    if not V2:
        expected += ["devices: listed", "null: listed"]
    assert result.lines == expected


#: what an unprivileged user without a delegated cgroup is told, once per command
ROOTLESS_WARNING = ("imagetool: warning: resource limits are ignored: this user has no "
                    + ("writable delegated cgroup v2 subtree" if V2 else "delegated cgroup (cgroup v1)"))


@pytest.mark.parametrize("way", ways(rootless=True))
def test_rootless_without_delegation_runs_unlimited_and_says_so_once(way: Way, prober: Prober) -> None:
    # the test user has no login session, so no cgroup is delegated to it (the next test makes one)
    script = "echo ran; grep -c imagetool /proc/self/cgroup | sed 's/^/in imagetool cgroups: /'"
    result = prober.probe(way, script, flags=("--memory", "64m", "--pids-limit", "50"))
    assert result.code == 0, result.stderr
    assert result.lines == ["ran", "in imagetool cgroups: 0"]
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [ROOTLESS_WARNING]
    # the default pids limit alone is dropped quietly, as podman does
    quiet = prober.probe(way, "echo ran")
    assert quiet.code == 0, quiet.stderr
    assert quiet.lines == ["ran"] and "warning" not in quiet.stderr


@pytest.mark.parametrize("way", ways(rootless=True, mode="build"))
def test_rootless_build_warns_once_for_all_its_steps(way: Way, prober: Prober) -> None:
    context = prober.context_dir(way)
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo one\nRUN echo two\nRUN echo three\n")
    assert prober.user is not None
    prober._ensure_image(True)
    prober.user.give(context)
    proc = prober.user.imagetool("build", "--no-cache", "--runtime", way.executor, "--memory", "64m", str(context),
                                 check=False)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "warning" in line] == [ROOTLESS_WARNING]


def test_a_limit_without_its_controller_fails_but_the_default_pids_limit_goes_quietly() -> None:
    resources = {"pids": {"limit": DEFAULT_PIDS_LIMIT}, "devices": [{"allow": False, "access": "rwm"}]}
    cgroups._check_controllers(resources, {"memory", "cpu"})
    assert resources == {"devices": [{"allow": False, "access": "rwm"}]}
    with pytest.raises(ContainerError, match="the pids cgroup controller is not available here"):
        cgroups._check_controllers({"pids": {"limit": 20}}, {"memory", "cpu"})
    with pytest.raises(ContainerError, match="the memory cgroup controller is not available here"):
        cgroups._check_controllers({"memory": {"limit": 1 << 26}}, {"pids"})


@pytest.mark.parametrize("flags, message", [
    (("--memory", "1m"), "--memory '1m': the minimum is 6m"),
    (("--memory", "lots"), "--memory 'lots': expected a size such as 512m or 2g"),
    (("--memory-swap", "1g"), "--memory-swap needs --memory (the swap limit counts memory plus swap)"),
    (("--memory", "64m", "--memory-swap", "32m"), "--memory-swap '32m': must be at least --memory"
                                                    " (memory plus swap)"),
    (("--cpus", "1", "--cpu-quota", "50000"), "--cpus and --cpu-period/--cpu-quota cannot both be given"),
    (("--cpus", "x"), "--cpus 'x': expected a number of CPUs such as 1.5"),
])
def test_bad_resource_flags_fail_before_running(flags: tuple[str, ...], message: str, busybox: str) -> None:
    proc = imagetool("run", "--rm", *flags, busybox, "true", check=False)
    assert proc.returncode == 125
    assert one_line_error(proc) == f"imagetool: {message}"


@dataclass
class DelegatedUser(RootlessUser):
    """The rootless user, its commands started in cgroups an administrator delegated to it (cgroup v1)."""

    procs: tuple[str, ...] = ()

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        join = "".join(f"echo $$ > {p}; " for p in self.procs)
        full = ["sh", "-c", join + 'exec "$@"', "sh", "runuser", "-u", self.name, "--", "env", "-i",
                *[f"{k}={v}" for k, v in {**self.env(), **(env or {})}.items()], *argv]
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, cwd=cwd or self.home,
                              input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def delegated_user(rootless_user: RootlessUser) -> Iterator[DelegatedUser]:
    """A cgroup handed to the rootless user as an administrator delegates one: its own directory in every v1
    hierarchy (and the hybrid unified one); on v2 a subtree whose leaf holds the user's commands."""
    name = f"imagetool-delegated-{os.getpid()}"
    made: list[Path] = []
    procs: list[str] = []
    try:
        for hierarchy in cgroups.hierarchies():
            if hierarchy.unified and not (V2 or hierarchy.mountpoint.endswith("/unified")):
                continue
            where = Path(hierarchy.mountpoint) / name
            where.mkdir()
            made.append(where)
            for setting in ("cpuset.cpus", "cpuset.mems"):
                if (where / setting).exists():
                    (where / setting).write_text((where.parent / setting).read_text())
            if V2:  # the limits' controllers for the subtree, and a leaf for the user's processes
                for controller in ("cpu", "memory", "pids"):
                    for level in (where.parent, where):
                        with open(level / "cgroup.subtree_control", "w") as f:
                            f.write(f"+{controller}")
                (where / "leaf").mkdir()
                made.append(where / "leaf")
            for directory in (where, where / "leaf") if V2 else (where,):
                for entry in [directory, *directory.iterdir()]:
                    if entry.is_file() or entry == directory:
                        os.chown(entry, rootless_user.uid, rootless_user.gid)
            procs.append(str(made[-1] / "cgroup.procs"))
        fields = {k: getattr(rootless_user, k) for k in ("name", "uid", "gid", "home", "ranges")}
        yield DelegatedUser(**fields, procs=tuple(procs))
    finally:
        for where in reversed(made):
            for sub in sorted((d for d in where.rglob("*") if d.is_dir()), reverse=True):
                _rmdir_when_empty(sub)
            if where.exists():
                _rmdir_when_empty(where)


@pytest.mark.parametrize("way", ways(rootless=True))
def test_rootless_with_a_delegated_cgroup_gets_its_limits(way: Way, busybox_layout: Path,
                                                           delegated_user: DelegatedUser) -> None:
    prober = Prober(busybox_layout, delegated_user)
    flags = ("--memory", "64m", "--cpus", "0.5", "--cpu-shares", "256", "--pids-limit", "100")
    under = f"/imagetool-delegated-{os.getpid()}"
    before = _container_dirs(under)
    result = prober.probe(way, READ_LIMITS, flags=flags)
    assert result.code == 0, result.stderr
    # no --memory-swap: as much swap again as memory, as docker and podman give
    assert result.lines[:6] == ["memory: 67108864", swap_line(128 << 20), "pids: 100", "cpu: 50000 100000",
                                "weight: 10" if V2 else "shares: 256", "cgroup-fs: read-only"]
    assert "warning" not in result.stderr
    _assert_own_and_removed(result.out, before, under)
    bomb = prober.probe(way, FORK_BOMB, flags=("--pids-limit", "20"))
    assert bomb.lines == ["processes: 19", "fork after: ok"]


def test_what_a_killed_run_leaves_is_swept_by_a_later_one(busybox: str) -> None:
    seconds = f"301.{os.getpid()}{random.randrange(10**6):06d}"  # no other test's process has this command line
    run = subprocess.Popen([sys.executable, "-m", "imagetool", "run", "--rm", busybox, "sleep", seconds],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            found = subprocess.run(["pgrep", "-x", "-f", f"sleep {seconds}"], capture_output=True,
                                   text=True).stdout.split()
            if found:
                break
            time.sleep(0.05)
        assert found, "the container did not start"
        paths = _cgroup_lines("".join(f"cgroup {line.split(':', 2)[1]} {line.split(':', 2)[2]}\n"
                                      for line in Path(f"/proc/{found[0]}/cgroup").read_text().splitlines()))
    finally:
        run.kill()  # no clean-up runs: the executor dies with its parent, its cgroup stays
        run.wait(timeout=30)
    dirs = _host_dirs(paths)
    for _ in range(100):
        if not subprocess.run(["pgrep", "-x", "-f", f"sleep {seconds}"], capture_output=True).stdout:
            break
        time.sleep(0.05)
    assert dirs and all(d.is_dir() for d in dirs)
    imagetool("run", "--rm", busybox, "true")
    assert all(d.is_dir() for d in dirs), "a recent cgroup may be one being set up: it stays"
    for d in dirs:  # as if the run had been killed minutes ago
        os.utime(d, (time.time() - 2 * cgroups.STALE_AFTER,) * 2)
    imagetool("run", "--rm", busybox, "true")
    assert not [d for d in dirs if d.exists()]
