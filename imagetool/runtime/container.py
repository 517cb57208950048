"""Container(spec, lowers, upper).run() -> exit status: what `imagetool run` and every RUN step call.

The bundle (config.json, the rootfs mountpoint, hosts/hostname/resolv.conf) lives in a
temporary directory; the executor is the helper process (embedded) or runc. Signals
this process receives are passed on; the exit status is the command's, or 128+signal.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from imagetool.errors import ContainerError
from imagetool.runtime import cancel, cgroups, netstack, overlay, prestart
from imagetool.runtime.etcfiles import EtcSettings
from imagetool.tmpdirs import small_temp_dir

HELPER = prestart.HELPER
FORWARDED = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM]
EXIT_SETUP = 125


class Container:
    """One run of `spec` over an overlay of `lowers` (top first) with `upper` as its upperdir."""

    def __init__(self, spec: dict[str, Any], lowers: list[Path], upper: Path, *, runtime: str = "embedded",
                 tidy: bool = False, tmpdir: str | None = None, etc_files: bool = True,
                 volatile: bool = True, userns: bool | None = None, etc: EtcSettings | None = None,
                 idmaps: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None = None,
                 runtime_flags: Sequence[str] = ()) -> None:
        if runtime not in ("embedded", "runc"):
            raise ContainerError(f"unknown runtime {runtime!r} (embedded or runc)")
        if runtime_flags and runtime != "runc":
            raise ContainerError("--runtime-flag passes global flags to runc: it needs --runtime runc "
                                 "(the embedded runtime has no such flags)")
        #: runc's global flags (buildah's --runtime-flag debug -> `runc --debug ...`)
        self.runtime_flags = list(runtime_flags)
        self.spec = copy.deepcopy(spec)
        self.lowers = [Path(p) for p in lowers]
        self.upper = Path(upper)
        self.runtime = runtime
        self.tidy = tidy
        self.tmpdir = tmpdir
        self.etc_files = etc_files
        self.etc = etc or EtcSettings()
        #: overlay "volatile": no syncs of the upperdir's filesystem (the namespace's teardown would wait
        #: for one); a crash may lose the container's changes, which a rerun makes again
        self.volatile = volatile
        #: run inside a user namespace (default: when not root), with these (uid, gid) maps
        self.userns = os.geteuid() != 0 if userns is None else userns
        self.idmaps = idmaps

    def run(self, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
            stderr: int | IO[Any] | None = None, output: Callable[[str], None] | None = None) -> int:
        """Run to completion; with `output`, stdout and stderr go to it line by line."""
        spec, self.spec = self.spec, copy.deepcopy(self.spec)  # each run adds its own /etc binds
        try:
            return self._run(stdin, stdout, stderr, output)
        finally:
            self.spec = spec

    def _run(self, stdin: Any, stdout: Any, stderr: Any, output: Callable[[str], None] | None) -> int:
        if output is not None:
            stdout, stderr = subprocess.PIPE, subprocess.STDOUT
        # the executor starts first: its interpreter's start-up overlaps the bundle, cgroup and filter work
        helper = prestart.take(stdin, stdout, stderr) if self.runtime == "embedded" else None
        try:
            return self._prepare_and_run(stdin, stdout, stderr, output, helper)
        finally:
            if helper is not None and helper.config is not None:
                helper.discard()  # it was never given its container

    def _prepare_and_run(self, stdin: Any, stdout: Any, stderr: Any, output: Callable[[str], None] | None,
                         helper: prestart.Helper | None) -> int:
        self.upper.mkdir(parents=True, exist_ok=True)
        work = overlay.workdir_for(self.upper)
        where = small_temp_dir(self.tmpdir, self.upper.parent)  # rootless: $XDG_RUNTIME_DIR, never a shared /tmp
        bundle = Path(tempfile.mkdtemp(prefix="imagetool-bundle-", dir=where))
        group = None
        try:
            (bundle / "rootfs").mkdir()
            self.spec["root"]["path"] = "rootfs"
            group = cgroups.prepare(self.spec)  # its own cgroup, under runc too (linux.cgroupsPath)
            if self.etc_files:
                self._etc_files(bundle)
            if helper is None:
                from imagetool.runtime.oci_runtime import run_runc

                return run_runc(self.spec, bundle, self.lowers, self.upper, work, stdin, stdout, stderr, output,
                                maps=self._maps() if self.userns else None, flags=self.runtime_flags)
            return self._run_embedded(helper, bundle, work, output, group)
        finally:
            if group is not None:
                group.remove()
            shutil.rmtree(bundle, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            if self.tidy:
                overlay.tidy_mountpoints(self.upper, self.lowers, self.mountpoints())

    def _maps(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        from imagetool.runtime import idmap

        return self.idmaps or idmap.rootless_maps()

    def _sync(self, pid: int, ready: int, go: int, cleanup: ExitStack) -> None:
        """The helper's stops before the container starts: id maps (rootless), then the private network."""
        from imagetool.runtime import idmap

        steps: list[tuple[bytes, Callable[[], object]]] = []
        if self.userns:
            maps = self._maps()
            steps.append((b"R", lambda: idmap.apply(pid, maps[0], maps[1])))
        if self.private_network():
            steps.append((b"N", lambda: cleanup.enter_context(netstack.attached(pid))))
        try:
            _sync_steps(ready, go, steps)
        except ContainerError:
            wait_forwarding_quietly(pid)
            raise

    def host_network(self) -> bool:
        return not any(ns["type"] == "network" for ns in self.spec["linux"].get("namespaces", []))

    def private_network(self) -> bool:
        """A network namespace of its own with slirp4netns attached (else loopback only, or the host's)."""
        return netstack.is_private(self.spec)

    def mountpoints(self) -> list[str]:
        return [m["destination"] for m in self.spec.get("mounts", [])]

    def _etc_files(self, bundle: Path) -> None:
        files = self.etc.files(self.spec.get("hostname") or "container", self.host_network(),
                               netstack.RESOLVER if self.private_network() else None)
        taken = {m["destination"] for m in self.spec.get("mounts", [])}
        for dest, content in files.items():
            (bundle / os.path.basename(dest)).write_text(content)
            if dest not in taken:
                self.spec["mounts"].append({"destination": dest, "type": "bind",
                                            "source": str(bundle / os.path.basename(dest)),
                                            "options": ["rbind", "rprivate"]})

    def _run_embedded(self, helper: prestart.Helper, bundle: Path, work: Path, output: Callable[[str], None] | None,
                      group: cgroups.Cgroup | None = None) -> int:
        extra: dict[str, Any] = {"overlay": {**overlay.describe(self.lowers, self.upper, work),
                                             "volatile": self.volatile},
                                 "userns": self.userns, "netstack": self.private_network()}
        spec = self.spec
        if spec["linux"].get("seccomp"):  # the helper gets the compiled filter, not the rules
            from imagetool.runtime import seccomp_bpf

            section = spec["linux"]["seccomp"]
            extra["seccomp"] = {"program": seccomp_bpf.program(section), "flags": seccomp_bpf.filter_flags(section)}
            spec = {**spec, "linux": {k: v for k, v in spec["linux"].items() if k != "seccomp"}}
        if group is not None:  # made and limited here; the container's PID 1 joins it first thing
            group.create(spec["linux"].get("resources") or {})
            spec, extra["cgroup"] = group.helper_spec(spec), group.procs()
        (bundle / "config.json").write_text(json.dumps(self.spec))
        if self.private_network():
            netstack.binary()  # a missing slirp4netns fails before the container starts
        helper.send(str(bundle), spec, extra)
        proc = helper.proc
        with open(helper.errors, "rb") as errors, ExitStack() as cleanup:
            if self.userns or self.private_network():
                assert helper.sync is not None
                sync, helper.sync = helper.sync, None
                try:
                    self._sync(proc.pid, sync[0], sync[1], cleanup)
                except ContainerError as err:  # PID 1 builds its root meanwhile: its own failure comes first
                    message = errors.read().decode(errors="replace").strip()
                    if message:
                        failed = ContainerError(message.splitlines()[-1])
                        failed.exit_code = EXIT_SETUP
                        raise failed.citing_cause() from err
                    raise
            else:
                helper.close_sync()
            with cancel.killing(proc.kill):  # the helper's death takes PID 1 (and its namespace) with it
                code = wait_forwarding(proc, output)
            message = errors.read().decode(errors="replace").strip()
        if message:
            error = ContainerError(message.splitlines()[-1])
            error.exit_code = code if code in (126, 127) else EXIT_SETUP
            raise error
        return code


def _sync_steps(ready: int, go: int, steps: list[tuple[bytes, Callable[[], object]]]) -> None:
    """For each (mark, action): wait for the helper to write `mark`, act, let it continue (G) or stop (N)."""
    try:
        for mark, action in steps:
            if os.read(ready, 1) != mark:
                return  # the helper failed before it got there; its error pipe says why
            try:
                action()
            except ContainerError:
                _tell(go, b"N")
                raise
            if not _tell(go, b"G"):
                return
    finally:
        os.close(ready)
        os.close(go)


def _tell(go: int, word: bytes) -> bool:
    """Give the helper its word; False when nobody reads it any more. The helper writes N before it forks
    PID 1, which reads the word only once its root is built: a PID 1 that failed before (a user outside
    the id map) has gone, and the helper with it, while the network was being attached. Its status and
    error pipe say why; the EPIPE would otherwise end `imagetool run` with click's silent status 1."""
    try:
        os.write(go, word)
    except BrokenPipeError:
        return False
    return True


def wait_forwarding_quietly(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def wait_forwarding(proc: subprocess.Popen[bytes], output: Callable[[str], None] | None) -> int:
    """Wait for `proc`, passing on the signals we receive; stream its output to `output` if given."""
    previous: dict[int, Any] = {}

    def forward(sig: int, _frame: object) -> None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass

    try:
        for sig in FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: no forwarding, the process still runs to its end
        previous.clear()
    try:
        if output is not None and proc.stdout is not None:
            for raw in proc.stdout:
                output(raw.decode(errors="replace").rstrip("\n"))
        rc = proc.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - rc if rc < 0 else rc
