"""Container networks, every way a container runs: private (slirp4netns), none, host.

The attack: a RUN step or `imagetool run` connects to a service on the host's 127.0.0.1 (here a
server this test starts). In a private network it must not get there, neither by 127.0.0.1 (the
container's own) nor through slirp's gateway 10.0.2.2, while the way out still works: the probe
connects to a second server on this machine's own non-loopback address, which the packets reach
through slirp4netns without leaving the machine. `--network none` has only lo; `--network host`
(documented unsafe) reaches the host's loopback. slirp4netns must end with the container, also
when imagetool itself is killed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.probes import Prober, Way, ways
from tests.lib.rootless import PYTHON, RootlessUser

MARK = "IMAGETOOL_NETWORK_TEST_MARK"


class Listener:
    """A TCP server answering each connection with `reached`, for at most `lifetime` seconds."""

    def __init__(self, address: str, lifetime: float = 600) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                try:
                    conn.sendall(b"reached\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def machine_address() -> str:
    """This machine's own first global IPv4 address: connecting to it stays on the machine."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
    assert addresses, "this machine has no non-loopback IPv4 address for the way-out probe"
    address = addresses[0]
    assert ipaddress.ip_address(address) not in ipaddress.ip_network("10.0.2.0/24"), \
        f"{address} is inside slirp4netns's own network: the way-out probe cannot tell"
    return address


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Listener, Listener]]:
    """A service on the host's loopback only, and one on the machine's own address."""
    loopback, outside = Listener("127.0.0.1"), Listener(machine_address())
    try:
        yield loopback, outside
    finally:
        loopback.close()
        outside.close()


def probe_script(loopback: Listener, outside: Listener, gateway: bool = True) -> str:
    """Which interfaces the container has, and which of the two services it reaches by which address.
    10.0.2.2 is tried only where it cannot leave the machine (slirp's gateway, or no route at all)."""
    lo, out, address = loopback.port, outside.port, outside.sock.getsockname()[0]
    return "\n".join([
        'try() { got=$(busybox nc -w 3 "$2" "$3" </dev/null 2>/dev/null); echo "$1: ${got:-unreached}"; }',
        'echo "interfaces: $(ls /sys/class/net | sort | tr "\\n" " ")"',
        f"try host-loopback-service-by-127.0.0.1 127.0.0.1 {lo}",
        *([f"try host-loopback-service-by-gateway 10.0.2.2 {lo}"] if gateway else []),
        f"try host-loopback-service-by-host-address {address} {lo}",
        f"try service-on-host-address {address} {out}",
    ])


def host_interfaces() -> str:
    return "interfaces: " + "".join(f"{name} " for name in sorted(os.listdir("/sys/class/net")))


@pytest.mark.parametrize("way", ways())
def test_private_network_reaches_out_but_not_the_hosts_loopback(way: Way, prober: Prober,
                                                                servers: tuple[Listener, Listener]) -> None:
    loopback, outside = servers
    before = loopback.accepted
    result = prober.probe(way, probe_script(loopback, outside))  # the default network is the private one
    assert result.code == 0, result.stderr
    assert result.lines == [
        "interfaces: lo tap0 ",
        "host-loopback-service-by-127.0.0.1: unreached",
        "host-loopback-service-by-gateway: unreached",
        "host-loopback-service-by-host-address: unreached",
        "service-on-host-address: reached",
    ], result.stderr
    assert loopback.accepted == before


@pytest.mark.parametrize("way", ways())
def test_network_none_has_only_loopback(way: Way, prober: Prober, servers: tuple[Listener, Listener]) -> None:
    loopback, outside = servers
    result = prober.probe(way, probe_script(loopback, outside), flags=("--network", "none"))
    assert result.code == 0, result.stderr
    assert result.lines == [
        "interfaces: lo ",
        "host-loopback-service-by-127.0.0.1: unreached",
        "host-loopback-service-by-gateway: unreached",
        "host-loopback-service-by-host-address: unreached",
        "service-on-host-address: unreached",
    ], result.stderr


@pytest.mark.parametrize("way", ways())
def test_network_host_reaches_the_hosts_loopback(way: Way, prober: Prober,
                                                 servers: tuple[Listener, Listener]) -> None:
    """The opt-in the help calls unsafe: the host's network, its loopback services included."""
    loopback, outside = servers
    result = prober.probe(way, probe_script(loopback, outside, gateway=False), flags=("--network", "host"))
    assert result.code == 0, result.stderr
    assert result.lines == [
        host_interfaces(),
        "host-loopback-service-by-127.0.0.1: reached",
        "host-loopback-service-by-host-address: unreached",
        "service-on-host-address: reached",
    ], result.stderr


@pytest.mark.parametrize("way", ways())
def test_private_resolv_conf_names_slirps_forwarder(way: Way, prober: Prober) -> None:
    """The resolver is slirp4netns's 10.0.2.3 (it forwards to the host's), reached through tap0's
    route; the host's loopback nameservers, unreachable from the namespace, are left out."""
    result = prober.probe(way, "grep '^nameserver' /etc/resolv.conf; ip route | grep default")
    assert result.code == 0, result.stderr
    nameservers = [line.split()[1] for line in result.lines if line.startswith("nameserver")]
    assert nameservers[0] == "10.0.2.3"
    assert not [n for n in nameservers if n.startswith("127.") or n == "::1"]
    assert result.lines[-1].split()[:3] == ["default", "via", "10.0.2.2"]


@pytest.mark.parametrize("way", ways())
def test_dns_flag_replaces_the_forwarder(way: Way, prober: Prober) -> None:
    result = prober.probe(way, "grep '^nameserver' /etc/resolv.conf", flags=("--dns", "192.0.2.53"))
    assert result.code == 0, result.stderr
    assert result.lines == ["nameserver 192.0.2.53"]


RAW_PROBE = ('out=$(busybox arping -c 1 -w 2 -I tap0 10.0.2.2 2>&1); '
             'case "$out" in *"not permitted"*) echo "raw packets: denied";; *) echo "raw packets: sent";; esac')


@pytest.mark.parametrize("way", ways())
def test_private_network_sends_no_raw_packets(way: Way, prober: Prober) -> None:
    """The way around --disable-host-loopback: a frame for 127.0.0.1 written to tap0 (AF_PACKET) makes
    slirp4netns connect to the host's loopback. Without CAP_NET_RAW, the private network's default,
    no such socket opens (arping's is one); --cap-add NET_RAW gives it back on purpose."""
    result = prober.probe(way, RAW_PROBE)
    assert (result.code, result.lines) == (0, ["raw packets: denied"]), result.stderr
    result = prober.probe(way, RAW_PROBE, flags=("--cap-add", "NET_RAW"))
    assert (result.code, result.lines) == (0, ["raw packets: sent"]), result.stderr


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_dockerfile_run_network_flag_follows_the_same_modes(runtime: str, tmp_path: Path,
                                                            servers: tuple[Listener, Listener]) -> None:
    """RUN --network=default is the private network, none and host as with `run`; `build --network`
    gives the default for steps that do not choose."""
    from tests.lib.images import busybox_image
    from imagetool.copy import copy_image
    from imagetool.transports import parse_image_name

    busybox_image(tmp_path / "layout", "latest")
    copy_image(parse_image_name(f"oci:{tmp_path / 'layout'}:latest"), parse_image_name("busybox"))
    loopback, outside = servers
    address = outside.sock.getsockname()[0]

    def step(flag: str) -> str:
        script = (f"echo {flag or 'unflagged'}: $(ls /sys/class/net | sort | tr '\\n' ' ')"
                  f"$(busybox nc -w 3 127.0.0.1 {loopback.port} </dev/null 2>/dev/null)"
                  f"$(busybox nc -w 3 {address} {outside.port} </dev/null 2>/dev/null)")
        return f"RUN {flag} {json.dumps(['sh', '-c', script])}\n"

    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        "FROM busybox\n" + step("") + step("--network=default") + step("--network=none") + step("--network=host"))
    out = imagetool("build", "--no-cache", "--runtime", runtime, str(tmp_path / "ctx")).stdout
    lines = [line for line in out.splitlines() if ": " in line and line.split(":")[0] in
             ("unflagged", "--network=default", "--network=none", "--network=host")]
    assert lines == [
        "unflagged: lo tap0 reached",
        "--network=default: lo tap0 reached",
        "--network=none: lo",
        f"--network=host: {host_interfaces()[len('interfaces: '):]}reachedreached",
    ]
    # the build's --network sets the default: none for the unflagged steps, host stays host
    out = imagetool("build", "--no-cache", "--network", "none", "--runtime", runtime, str(tmp_path / "ctx")).stdout
    assert "unflagged: lo" in out.splitlines() and "--network=default: lo" in out.splitlines()


# -- the stack's lifetime -------------------------------------------------------------------------------------

def marked(mark: str) -> dict[int, str]:
    """pid -> command name of the live processes whose environment carries `mark`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"{MARK}={mark}".encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            found[int(entry)] = stat[stat.index("(") + 1:stat.rindex(")")]
    return found


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def imagetool_command(way: Way, user: RootlessUser | None, env: dict[str, str], *args: str) \
        -> tuple[list[str], dict[str, str]]:
    """argv and environment of imagetool for `way`, with `env` added (the mark its processes carry)."""
    if not way.rootless:
        return [sys.executable, "-m", "imagetool", *args], {**os.environ, **env}
    assert user is not None
    full = user.env(**env)
    return (["runuser", "-u", user.name, "--", "env", "-i", *[f"{k}={v}" for k, v in full.items()],
             str(PYTHON), "-m", "imagetool", *args], {**os.environ, **env})


@pytest.mark.parametrize("way", ways(mode="run"))
def test_slirp4netns_ends_with_the_container(way: Way, prober: Prober) -> None:
    mark = uuid.uuid4().hex
    prober._ensure_image(way.rootless)
    argv, env = imagetool_command(way, prober.user, {MARK: mark}, "run", "--rm", "--runtime", way.executor,
                                  "busybox", "sh", "-c", "ls /sys/class/net")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tap0" in proc.stdout.split()  # slirp4netns was there
    # it quits when the container ends; its exit waits only for the kernel's teardown of the tap device
    assert wait_for(lambda: marked(mark) == {}, 2), marked(mark)


@pytest.mark.parametrize("way", ways(mode="run"))
def test_killed_run_leaves_no_slirp4netns(way: Way, prober: Prober) -> None:
    """SIGKILL to imagetool: the exit pipe's write end dies with it, and slirp4netns quits."""
    mark = uuid.uuid4().hex
    prober._ensure_image(way.rootless)
    tmp = prober.context_dir(way)  # the bundle lands here: what a killed runc leaves is ours to remove
    argv, env = imagetool_command(way, prober.user, {MARK: mark, "TMPDIR": str(tmp)}, "run", "--rm",
                                  "--runtime", way.executor, "busybox", "sleep", "60")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: "slirp4netns" in marked(mark).values(), 30), \
            (marked(mark), proc.poll(), proc.stderr.read() if proc.poll() is not None else b"")  # type: ignore
        main = [pid for pid, comm in marked(mark).items() if comm.startswith("python")
                and b"imagetool" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:4]]
        assert len(main) == 1, marked(mark)
        os.kill(main[0], signal.SIGKILL)
        assert wait_for(lambda: "slirp4netns" not in marked(mark).values(), 10), marked(mark)
        if way.executor == "embedded":  # the helper and the container die with imagetool too
            assert wait_for(lambda: marked(mark) == {}, 10), marked(mark)
    finally:
        proc.kill()
        proc.wait()
        if way.executor == "runc":
            _clean_runc(way, prober.user, tmp, mark)
        subprocess.run(["rm", "-rf", str(tmp)], capture_output=True)


def _runc(way: Way, user: RootlessUser | None, *args: str) -> subprocess.CompletedProcess[str]:
    if way.rootless:  # imagetool keeps a rootless runc's state under $XDG_RUNTIME_DIR
        assert user is not None
        return user.run(["runc", "--root", str(user.home / "run" / "imagetool" / "runc"), *args], check=False)
    return subprocess.run(["runc", *args], capture_output=True, text=True)


def _clean_runc(way: Way, user: RootlessUser | None, tmp: Path, mark: str) -> None:
    """A killed imagetool leaves `runc run` and its container behind (runc's own way): remove ours, the
    containers whose bundle is under `tmp`."""
    for pid in marked(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    listed = _runc(way, user, "list", "--format", "json")
    for state in json.loads(listed.stdout or "null") or []:
        bundle = Path(state["bundle"])
        if bundle.is_relative_to(tmp):
            _runc(way, user, "delete", "--force", state["id"])
    # killed before runc recorded its state, the rootfs imagetool mounted for it is known by its place alone
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in reversed(points):
        if Path(point).is_relative_to(tmp):
            subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_missing_slirp4netns_is_one_line_naming_the_package(runtime: str, tmp_path: Path) -> None:
    from imagetool.copy import copy_image
    from imagetool.transports import parse_image_name
    from tests.lib.images import busybox_image

    busybox_image(tmp_path / "layout", "latest")
    copy_image(parse_image_name(f"oci:{tmp_path / 'layout'}:latest"), parse_image_name("busybox"))
    env = {"IMAGETOOL_SLIRP4NETNS": str(tmp_path / "no-such-slirp4netns")}
    proc = imagetool("run", "--rm", "--runtime", runtime, "busybox", "true", check=False, env=env)
    assert proc.returncode == 125
    assert "slirp4netns" in one_line_error(proc) and "package" in one_line_error(proc)
    # not a silent fallback to the host's network; none and host need no stack
    assert imagetool("run", "--rm", "--runtime", runtime, "--network", "none", "busybox", "true", env=env)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\nRUN echo RAN\n")
    proc = imagetool("build", "--runtime", runtime, str(tmp_path / "ctx"), check=False, env=env)
    assert proc.returncode != 0 and "RAN" not in proc.stdout.replace("RUN echo RAN", "")
    assert one_line_error(proc).endswith("slirp4netns is not installed (needed for --network private): "
                                         "install the slirp4netns package, or use --network none or host")
    # a stack that fails to come up stops the container before its command (the handshake's or hook's no)
    proc = imagetool("run", "--rm", "--runtime", runtime, "busybox", "echo", "RAN", check=False,
                     env={"IMAGETOOL_SLIRP4NETNS": "/bin/false"})
    assert proc.returncode == 125 and "RAN" not in proc.stdout
    assert "imagetool: --network private: slirp4netns failed" in proc.stderr.splitlines()[-1]
