"""A private network with a way out: slirp4netns attached to the container's network namespace.

`--network private` (the default of `run` and of RUN steps) gives the container its own network
namespace with a tap device whose packets slirp4netns, a process on the host side, turns into
ordinary sockets of its own. The container reaches what this machine reaches, but not this
machine's loopback services: `--disable-host-loopback` refuses the gateway 10.0.2.2 (slirp's
alias for the host's 127.0.0.1), and 127.0.0.1 inside the namespace is the container's own.
That option does not stop a frame addressed to 127.0.0.1 written straight to tap0: slirp
connects to the host's loopback for it. Writing such frames takes CAP_NET_RAW (or CAP_NET_ADMIN
to route 127.0.0.1 out of tap0), so a private network's default capabilities have neither
(spec.default_capabilities). DNS goes to slirp's forwarder 10.0.2.3, which asks the host's first
nameserver: port 53 of that one address is all of the host the forwarder reaches, as with podman.

slirp4netns rather than pasta (passt 0.0~git20230309 on Debian 12): that pasta, started as root,
drops its capabilities before it opens /proc/PID/ns/*, so it cannot attach to a container by pid;
it forwards every port bound on the host's loopback unless told `-T none -U none`, gives the
container the host's own address (so the host's address is the container's own) and has no ready
or exit descriptor. slirp4netns attaches by pid as root and rootless (`--userns-path`), says when
the interface is up (`--ready-fd`, about 5 ms after start) and ends when the write end of its
`--exit-fd` pipe closes: that end is only ever ours, so a killed imagetool takes it along.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from imagetool.errors import ContainerError

#: the resolver slirp4netns offers the namespace (its default 10.0.2.0/24: the namespace is .100, the gateway .2)
RESOLVER = "10.0.2.3"
#: slirp's maximum, as podman sets it: fewer, larger packets through the user-mode stack
MTU = 65520
#: seconds slirp4netns may take to bring the interface up (it takes milliseconds)
READY_TIMEOUT = 10.0
PACKAGE_HINT = "install the slirp4netns package, or use --network none or host"


class NetStackError(ContainerError):
    exit_code = 125


def binary() -> str:
    path = shutil.which(os.environ.get("IMAGETOOL_SLIRP4NETNS", "slirp4netns"))
    if path is None:
        raise NetStackError(f"slirp4netns is not installed (needed for --network private): {PACKAGE_HINT}")
    return path


def _joins_userns(pid: int) -> bool:
    """The namespace belongs to another user namespace than ours (rootless): slirp must join it first."""
    try:
        return os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    except OSError as err:
        raise NetStackError(f"--network private: the container's process is gone ({err.strerror})") from err


class NetStack:
    """A running slirp4netns serving one network namespace; `stop()` ends it."""

    def __init__(self, proc: subprocess.Popen[bytes], exit_fd: int) -> None:
        self.proc = proc
        self._exit_fd: int | None = exit_fd

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Close the exit pipe: slirp4netns quits at once. Its exit then waits on the kernel's teardown
        of the tap device (an RCU grace period, 15-30 ms), which the caller need not sit through: a
        thread reaps it (and after our own exit, init does)."""
        if self._exit_fd is None:
            return
        os.close(self._exit_fd)
        self._exit_fd = None
        if self.proc.poll() is None:
            import threading

            threading.Thread(target=self._reap, name="slirp4netns-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it did not heed the exit pipe
            self.proc.kill()
            self.proc.wait()


def start(pid: int) -> NetStack:
    """Attach slirp4netns to /proc/PID/ns/net and return once the namespace's interface is configured."""
    argv = [binary(), "--configure", f"--mtu={MTU}", "--disable-host-loopback", "--enable-sandbox",
            "--enable-seccomp"]
    if _joins_userns(pid):
        argv.append(f"--userns-path=/proc/{pid}/ns/user")
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen([*argv, "--ready-fd", str(ready_w), "--exit-fd", str(exit_r), str(pid), "tap0"],
                                    pass_fds=(ready_w, exit_r), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)  # a ^C at the terminal is for the container
        except OSError as err:
            os.close(ready_r)
            os.close(exit_w)
            raise NetStackError(f"--network private: starting slirp4netns: {err.strerror}") from err
        finally:
            os.close(ready_w)
            os.close(exit_r)
        stack = NetStack(proc, exit_w)
        try:
            ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
            up = bool(ready) and os.read(ready_r, 1) == b"1"
        finally:
            os.close(ready_r)
        if not up:
            stack.stop()
            log.seek(0)
            raise NetStackError(f"--network private: slirp4netns failed: {_last_line(log.read())}")
        return stack


def _last_line(output: bytes) -> str:
    """What slirp4netns said went wrong, without its warnings and its own epilogue."""
    text = output.decode(errors="replace")
    if "/dev/net/tun" in text:
        return ("/dev/net/tun is not open to this user (standard systems make it mode 0666; "
                "as root: chmod 0666 /dev/net/tun)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("WARNING", "child failed"))] or lines
    return lines[-1] if lines else "it exited before the network was up"


@contextmanager
def attached(pid: int) -> Iterator[NetStack]:
    """slirp4netns for `pid`'s network namespace for the length of the block."""
    stack = start(pid)
    try:
        yield stack
    finally:
        stack.stop()


class RuncNetwork:
    """slirp4netns for a container runc runs, attached from runc's createRuntime hook.

    runc runs that hook with the container's state (its pid among it) on standard input, after
    the namespaces exist and before the process execs. The hook writes the state to a FIFO in
    the bundle and waits on a second FIFO for our word: G (go on) once slirp4netns is attached,
    anything else (the hook fails, and with it the container) when it could not be.
    """

    def __init__(self, bundle: Path | None) -> None:
        self.stack: NetStack | None = None
        self.error: NetStackError | None = None
        self._fds: list[int] = []
        if bundle is None:
            return
        self.ready, self.go = str(bundle / "netstack-ready"), str(bundle / "netstack-go")
        os.mkfifo(self.ready, 0o600)
        os.mkfifo(self.go, 0o600)
        # both held open from the start: the hook's opens never block, and our death closes them
        self._fds = [os.open(self.ready, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC),
                     os.open(self.go, os.O_RDWR | os.O_CLOEXEC)]

    def hook(self) -> dict[str, Any]:
        script = '/bin/cat >"$0" && read -r word <"$1" && [ "$word" = G ]'
        return {"path": "/bin/sh", "args": ["sh", "-c", script, self.ready, self.go]}

    def attach(self, runc: subprocess.Popen[bytes]) -> None:
        """Wait for the hook's state, start the stack for its pid, let the hook go on (or fail it)."""
        if not self._fds:
            return
        import json

        state = self._read_state(runc)
        if state is None:
            return  # runc ended before its hooks: its own status and message say why
        try:
            self.stack = start(int(json.loads(state)["pid"]))
        except (ValueError, KeyError, TypeError):
            self.error = NetStackError("--network private: runc's hook state has no pid")
        except NetStackError as err:
            self.error = err
        os.write(self._fds[1], b"N\n" if self.error else b"G\n")

    def check(self) -> None:
        """Raise what kept the network from coming up (runc has then failed the container)."""
        if self.error is not None:
            raise self.error

    def _read_state(self, runc: subprocess.Popen[bytes]) -> bytes | None:
        """The state the hook writes (complete once it closes the FIFO), or None if runc ends first."""
        data = b""
        poller = select.poll()
        poller.register(self._fds[0], select.POLLIN)
        while True:
            if poller.poll(100):
                chunk = os.read(self._fds[0], 65536)
                if chunk:
                    data += chunk
                    continue
                if data:
                    return data
                os.write(self._fds[1], b"N\n")  # the hook came and went without a word: stop it
                return None
            if runc.poll() is not None:
                return None

    def close(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def is_private(spec: dict[str, Any]) -> bool:
    """The spec asks for a private network: its own namespace (not joined by path), slirp4netns attached."""
    from imagetool.runtime.spec import ANNOTATION_NETWORK

    own = any(ns["type"] == "network" and not ns.get("path") for ns in spec["linux"].get("namespaces", []))
    return own and (spec.get("annotations") or {}).get(ANNOTATION_NETWORK) == "private"


@contextmanager
def for_runc(spec: dict[str, Any], bundle: Path) -> Iterator[RuncNetwork]:
    """The network of a runc container: for a private one, a hook added to `spec` (before config.json
    is written); the stack ends with the block."""
    private = is_private(spec)
    if private:
        binary()  # a missing slirp4netns fails before runc starts anything
    network = RuncNetwork(bundle if private else None)
    if private:
        spec.setdefault("hooks", {}).setdefault("createRuntime", []).append(network.hook())
    try:
        yield network
    finally:
        network.close()
