"""Escapes through mounts, device nodes and keyrings (issue 12, items 1-4), tried from inside a container.

Each probe runs every way (embedded and runc, root and rootless, `run` and a build RUN step) and
must print the same safe answer: the expectation depends on root or rootless, never on the executor,
so embedded and runc agree row by row.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.lib.probes import Prober, Way, ways

MARKER = "MARKER-host-disk-7f3a"


# -- 1. host devices -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def marked_disk() -> Iterator[tuple[int, int]]:
    """A read-only loop device over a file holding MARKER: (major, minor). Detached at the end."""
    path = Path(subprocess.run(["mktemp", "/tmp/imagetool-disk-XXXXXX"], capture_output=True, text=True,
                               check=True).stdout.strip())
    try:
        with open(path, "wb") as f:
            f.write(MARKER.encode() + b"\n")
            f.truncate(1 << 20)
        device = subprocess.run(["losetup", "-r", "-f", "--show", str(path)], capture_output=True, text=True,
                                check=True).stdout.strip()
        try:
            with open(device, "rb") as f:  # the host can read it: the probe's negative answers mean something
                assert f.read(len(MARKER)) == MARKER.encode()
            rdev = os.stat(device).st_rdev
            yield os.major(rdev), os.minor(rdev)
        finally:
            subprocess.run(["losetup", "-d", device], check=True)
    finally:
        path.unlink()


#: where a container can write: its root, /dev, /dev/shm, a volume, a --tmpfs (one asking for `dev`)
NODE_DIRS = ["/tmp", "/dev", "/dev/shm", "/vol", "/t1", "/t2"]


def node_script(major: int, minor: int) -> str:
    return f"""
for d in {' '.join(NODE_DIRS)}; do
  [ -d $d ] || continue
  if ! mknod $d/blk b {major} {minor} 2>/dev/null; then echo "$d: mknod denied"; continue; fi
  if head -c 64 $d/blk 2>/dev/null | grep -q {MARKER}; then echo "$d: read HOST DISK"; else echo "$d: read denied"; fi
  rm -f $d/blk
done
if mknod /tmp/c c 1 3 2>/dev/null; then
  {{ echo x > /tmp/c; }} 2>/dev/null && echo "made null: opens" || echo "made null: denied"
fi
echo x > /dev/null && echo "null: ok"
[ "$(head -c 5 /dev/zero | wc -c)" = 5 ] && echo "zero: ok"
[ "$(head -c 5 /dev/urandom | wc -c)" = 5 ] && echo "urandom: ok"
"""


@pytest.mark.parametrize("way", ways())
def test_a_node_made_in_the_container_opens_no_host_device(prober: Prober, way: Way,
                                                           marked_disk: tuple[int, int]) -> None:
    volume = prober.context_dir(way)
    try:
        run_flags = ("-v", f"{volume}:/vol", "--tmpfs", "/t1", "--tmpfs", "/t2:dev")
        result = prober.probe(way, node_script(*marked_disk), flags=run_flags, build_flags=("-v", f"{volume}:/vol"))
        assert result.code == 0, result.stderr
        dirs = NODE_DIRS if way.mode == "run" else NODE_DIRS[:4]
        # root keeps CAP_MKNOD (images may ship nodes) but no node opens; no user namespace may make one
        outcome = "mknod denied" if way.rootless else "read denied"
        expected = [f"{d}: {outcome}" for d in dirs]
        expected += [] if way.rootless else ["made null: denied"]
        assert result.lines == [*expected, "null: ok", "zero: ok", "urandom: ok"]
        assert not any(volume.iterdir())
    finally:
        shutil.rmtree(volume, ignore_errors=True)


# -- 2. the cgroup tree ----------------------------------------------------------------------------------------

CGROUP_SCRIPT = """
cg=/sys/fs/cgroup
for c in pids memory devices systemd; do
  if mkdir $cg/$c/imagetool-probe 2>/dev/null; then echo "mkdir $c: MADE"; rmdir $cg/$c/imagetool-probe
  else echo "mkdir $c: denied"; fi
done
{ echo $$ > $cg/devices/cgroup.procs; } 2>/dev/null && echo "leave devices cgroup: MOVED" \
  || echo "leave devices cgroup: denied"
{ echo 1 > $cg/pids/notify_on_release; } 2>/dev/null && echo "cgroup file: WRITTEN" || echo "cgroup file: denied"
touch /sys/kernel/imagetool-probe 2>/dev/null && echo "sysfs: WRITTEN" || echo "sysfs: denied"
[ "$(readlink /proc/self/ns/cgroup)" = "$HOSTNS" ] && echo "cgroupns: host" || echo "cgroupns: own"
"""


@pytest.mark.parametrize("network", ["private", "host"])
@pytest.mark.parametrize("way", ways())
def test_cgroups_are_the_containers_own_and_read_only(prober: Prober, way: Way, network: str) -> None:
    host_ns = os.readlink("/proc/self/ns/cgroup")  # the rootless user's is the same: no one made another
    script = f"HOSTNS='{host_ns}'\n{CGROUP_SCRIPT}"
    result = prober.probe(way, script, flags=("--network", network),
                          build_flags=("--network", "none" if network == "private" else "host"))
    assert result.code == 0, result.stderr
    assert result.lines == ["mkdir pids: denied", "mkdir memory: denied", "mkdir devices: denied",
                            "mkdir systemd: denied", "leave devices cgroup: denied", "cgroup file: denied",
                            "sysfs: denied", "cgroupns: own"]


# -- 3. read-only volumes all the way down ---------------------------------------------------------------------

@pytest.fixture
def volume_with_submount(prober: Prober, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory (owned by the way's user) with a tmpfs mounted at sub/; unmounted at the end."""
    way = request.getfixturevalue("way")
    top = prober.context_dir(way)
    (top / "sub").mkdir()
    if way.rootless:
        prober.user.give(top)  # type: ignore[union-attr]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=1m", "imagetool-probe", str(top / "sub")],
                   check=True)
    try:
        yield top
    finally:
        subprocess.run(["umount", str(top / "sub")], check=True)
        shutil.rmtree(top, ignore_errors=True)


VOLUME_SCRIPT = """
touch /ro/top 2>/dev/null && echo "ro top: WRITTEN" || echo "ro top: denied"
touch /ro/sub/below 2>/dev/null && echo "ro submount: WRITTEN" || echo "ro submount: denied"
mkdir /cg/pids/imagetool-probe 2>/dev/null && { echo "ro cgroup: MADE"; rmdir /cg/pids/imagetool-probe; } \
  || echo "ro cgroup: denied"
touch /rw/sub/below && echo "rw submount: written"; rm -f /rw/sub/below
"""


@pytest.mark.parametrize("way", ways())
def test_read_only_volumes_are_read_only_below_their_top(prober: Prober, way: Way,
                                                          volume_with_submount: Path) -> None:
    vol = volume_with_submount
    flags = ("-v", f"{vol}:/ro:ro", "-v", "/sys/fs/cgroup:/cg:ro", "-v", f"{vol}:/rw")
    result = prober.probe(way, VOLUME_SCRIPT, flags=flags)
    assert result.code == 0, result.stderr
    assert result.lines == ["ro top: denied", "ro submount: denied", "ro cgroup: denied", "rw submount: written"]
    assert not (vol / "sub" / "below").exists() and not (vol / "top").exists()


# -- 4. the caller's session keyring ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def keyprobe() -> Iterator[Path]:
    """tests/lib/keyprobe.c built static (busybox has no keyctl), in a directory everyone can read."""
    out = Path(subprocess.run(["mktemp", "-d", "/tmp/imagetool-keyprobe-XXXXXX"], capture_output=True, text=True,
                              check=True).stdout.strip())
    try:
        out.chmod(0o755)
        source = Path(__file__).resolve().parents[1] / "lib" / "keyprobe.c"
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out / "keyprobe"), str(source)], check=True)
        yield out / "keyprobe"
    finally:
        shutil.rmtree(out, ignore_errors=True)


KEY_SCRIPT = "set -- $(cat /probe/serials); /probe/keyprobe check probe-key $1 $2"


#: every way as the image's user, and `run --user nobody` (a build has no --user)
KEY_CASES = [pytest.param(p.values[0], "default", id=p.id) for p in ways()] + \
    [pytest.param(p.values[0], "nobody", id=f"{p.id}-nobody") for p in ways(mode="run")]


@pytest.mark.parametrize(("way", "user"), KEY_CASES)
def test_the_callers_session_keyring_is_out_of_reach(prober: Prober, way: Way, user: str,
                                                     keyprobe: Path) -> None:
    probe_dir = prober.context_dir(way)
    try:
        shutil.copy2(keyprobe, probe_dir / "keyprobe")
        probe_dir.chmod(0o755)  # `--user nobody` runs it too
        if way.rootless:
            prober.user.give(probe_dir)  # type: ignore[union-attr]
        # the caller (root, or the rootless user in its own login session) holds a key in a fresh session keyring
        wrap = (str(probe_dir / "keyprobe"), "add", "probe-key", "s3cret-key", str(probe_dir / "serials"))
        # the default seccomp profile refuses keyctl itself; unconfined, the keyring must still be fresh
        for seccomp, expected in (("unconfined", ["session: fresh", "search: denied", "read: denied"]),
                                  ("default", ["session: none", "search: denied", "read: denied"])):
            flags = ("-v", f"{probe_dir}:/probe:ro", "--security-opt", f"seccomp={seccomp}",
                     *(("--user", "nobody") if user == "nobody" else ()))
            if seccomp == "default":
                flags = (*flags[:2], *flags[4:])
            result = prober.probe(way, KEY_SCRIPT, flags=flags, build_flags=flags[:4 if seccomp != "default" else 2],
                                  wrap=wrap)
            assert result.code == 0, result.stderr
            assert result.lines == expected, seccomp
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
