"""The executor process: `python -S -I helper.py BUNDLE ERRFD` runs the bundle's spec.

A fresh, single-threaded interpreter (never a fork of the caller) unshares the
namespaces, then forks the container's PID 1, which builds the root filesystem and
execs the command. This process stays outside, forwards signals to PID 1 and exits
with its status (128+signal when it was killed). Setup failures are written to ERRFD
as one line. Standard library plus this package's stdlib-only modules (linux, users, paths,
rootfs, console), so start-up stays small;
BUNDLE/helper.marshal holds (spec, extras) - the config.json beside it is the same spec.
"""

from __future__ import annotations

import marshal
import os
import resource  # used after pivot_root, when the host's standard library is out of reach
import _signal as signal  # type: ignore[import-not-found]  # the C module: signal.py wraps it in enums, a third of this start-up
import sys
import warnings  # noqa: F401  os.execvpe imports it, after pivot_root

if __name__ == "__main__":  # run as a script: make the package importable without site-packages
    # The two packages are entered as bare modules rather than by running their __init__ files:
    # those import typing (and with it re, collections, functools): about 5 ms of a 25 ms start-up.
    _runtime_dir = os.path.dirname(os.path.abspath(__file__))
    for _name, _path in (("imagetool", os.path.dirname(_runtime_dir)), ("imagetool.runtime", _runtime_dir)):
        _package = type(sys)(_name)
        _package.__path__ = [_path]
        sys.modules.setdefault(_name, _package)

from imagetool.runtime import linux, users  # noqa: E402
from imagetool.runtime.console import copy_winsize, open_console, relay, setup_terminal  # noqa: E402
from imagetool.runtime.rootfs import locked_flags, mask_paths, mount_entry, mount_overlay, pivot  # noqa: E402

FORWARDED = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM]
EXIT_SETUP = 125


class ExecFailed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def set_rlimits(rlimits: list[dict]) -> None:
    for item in rlimits:
        kind = getattr(resource, item["type"], None)
        if kind is None:
            raise OSError(22, f"unknown rlimit {item['type']}")
        soft, hard = (resource.RLIM_INFINITY if v >= 1 << 63 else v  # the spec's "no limit"
                      for v in (item["soft"], item["hard"]))
        resource.setrlimit(kind, (soft, hard))


def drop_privileges(process: dict, user: users.ExecUser) -> None:
    caps = process.get("capabilities") or {}
    bounding = linux.cap_bits([c for c in caps.get("bounding", []) if c in linux.CAPABILITIES])
    effective = linux.cap_bits([c for c in caps.get("effective", []) if c in linux.CAPABILITIES])
    permitted = linux.cap_bits([c for c in caps.get("permitted", []) if c in linux.CAPABILITIES])
    ambient = linux.cap_bits([c for c in caps.get("ambient", []) if c in linux.CAPABILITIES])
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.drop_bounding(bounding)
    if user.uid != 0 and ambient:
        linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.groups)
    except PermissionError:  # a user namespace with setgroups denied: keep the (single) group we have
        if user.groups not in ([], [user.gid]):
            raise
    os.setgid(user.gid)
    os.setuid(user.uid)
    if user.uid == 0 or ambient:
        linux.capset(effective & permitted, permitted, ambient)
        linux.set_ambient(ambient)


def resolve_user(spec: dict) -> users.ExecUser:
    """The image's USER (annotation) looked up in the container's files, else the spec's numeric ids."""
    name = (spec.get("annotations") or {}).get("org.imagetool.user")
    if name:
        return users.resolve(name, "/")
    u = spec["process"].get("user") or {}
    uid, gid = u.get("uid", 0), u.get("gid", 0)
    found = users.resolve(f"{uid}:{gid}", "/")
    extra = [g for g in u.get("additionalGids", []) if g not in found.groups]
    found.groups.extend(extra)
    return found


def container_main(bundle: str, spec: dict, extra: dict, errfd: int, console: object | None,
                   network: tuple[int, int] | None = None, joined: int | None = None) -> None:
    """PID 1 of the new namespaces: build the root, drop privileges, exec. Never returns."""
    os.setsid()
    # a keyring of its own, as runc gives each container: the caller's session keyring stays out of reach
    linux.join_session_keyring(f"_ses.{os.path.basename(bundle)}")
    rootfs = os.path.join(bundle, spec["root"]["path"])
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    overlay = extra.get("overlay")
    if overlay:
        mount_overlay(rootfs, overlay["lower"], overlay.get("upper"), overlay.get("work"), linux.MS_NODEV,
                      volatile=bool(overlay.get("volatile")))
    else:
        linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
        linux.set_mount_flags(rootfs, linux.MS_NODEV)
    namespaces = {n["type"] for n in spec["linux"].get("namespaces", [])}
    for m in spec.get("mounts") or []:
        if joined is not None and m.get("type") in ("cgroup", "cgroup2"):  # it shows the namespace's root
            enter_cgroup(joined, "cgroup" in namespaces)
            joined = None
        mount_entry(rootfs, m)
    if joined is not None:
        enter_cgroup(joined, "cgroup" in namespaces)
    if console is not None:
        master, slave = open_console(rootfs)
        copy_winsize(0, slave)
        console.sendmsg([b"t"], [(1, 1, master.to_bytes(4, sys.byteorder))])  # type: ignore[attr-defined]
        os.close(master)
        console.close()  # type: ignore[attr-defined]
        setup_terminal(slave)
    if "uts" in namespaces and spec.get("hostname"):
        linux.sethostname(spec["hostname"])
    if "network" in namespaces:
        linux.set_loopback_up()
    pivot(rootfs)
    mask_paths(spec["linux"].get("maskedPaths") or [], spec["linux"].get("readonlyPaths") or [])
    if spec["root"].get("readonly"):
        linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | locked_flags("/"))
    process = spec["process"]
    user = resolve_user(spec)
    env = list(process.get("env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    cwd = process.get("cwd") or "/"
    os.makedirs(cwd, exist_ok=True)
    os.chdir(cwd)
    set_rlimits(process.get("rlimits") or [])
    users.check_mapped(user)
    if network is not None:  # the network is up (G) before the command starts, or the container ends here
        go = os.read(network[0], 1)
        os.close(network[0])
        os.close(network[1])
        if go != b"G":
            os._exit(EXIT_SETUP)
    seccomp = extra.get("seccomp")
    if seccomp and not process.get("noNewPrivileges"):  # without no_new_privs only CAP_SYS_ADMIN may load it
        linux.load_seccomp(seccomp["program"], seccomp["flags"])
    drop_privileges(process, user)
    os.umask(0o022)
    # after the credential changes, which clear it: the namespace dies with the helper
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if seccomp and process.get("noNewPrivileges"):  # last, so that it filters the container's calls only
        linux.load_seccomp(seccomp["program"], seccomp["flags"])
    envmap = dict(e.partition("=")[::2] for e in env)
    args = process["args"]
    if (spec.get("annotations") or {}).get("org.imagetool.init") == "true":
        run_init(args, envmap, errfd)
    execute(args, envmap, errfd)


def enter_cgroup(joined: int, own_namespace: bool) -> None:
    """Wait for our parent's word that we are in the container's cgroup, then take a cgroup namespace, whose
    root that cgroup becomes. The parent moves us while we build the root: on cgroup v1 the first move
    waits for an RCU grace period (10-30 ms), which is then no longer ours to wait for."""
    word = os.read(joined, 1)
    os.close(joined)
    if word != b"G":
        os._exit(EXIT_SETUP)  # our parent said why on the error pipe
    if own_namespace:
        linux.unshare(linux.CLONE_NEWCGROUP)


def place(procs: list[str], child: int, joined: int, errfd: int) -> None:
    """Move PID 1 into the container's cgroup and give it the word (G: it is there), as runc's parent
    process places its init. PID 1 builds its root meanwhile; it starts nothing before the word."""
    from imagetool.runtime.cgroups import join

    word = b"G"
    try:
        join(procs, child)
    except OSError as err:
        word = b"N"
        if err.errno != 3:  # ESRCH: PID 1 has failed already, and said why
            os.write(errfd, f"setting up the container: {err}\n".encode())
    try:
        os.write(joined, word)
    except OSError:
        pass  # it has gone
    os.close(joined)


def execute(args: list[str], env: dict[str, str], errfd: int) -> None:
    os.set_inheritable(errfd, False)
    # exec keeps an ignored signal ignored and the blocked mask blocked: the interpreter ignores SIGPIPE
    # and SIGXFSZ (`yes | head -1` would see EPIPE instead of dying quietly), and whoever started
    # imagetool may ignore more (nohup, a shell's background job: SIGHUP, SIGINT, SIGQUIT). The command
    # starts as runc starts it: every signal at its default, none blocked
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # the C library's own (32, 33)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError as err:
        raise ExecFailed(f'exec: "{args[0]}": executable file not found in $PATH', 127) from err
    except PermissionError as err:
        raise ExecFailed(f'exec: "{args[0]}": permission denied', 126) from err
    except OSError as err:
        raise ExecFailed(f'exec: "{args[0]}": {err.strerror}', 126) from err


def run_init(args: list[str], env: dict[str, str], errfd: int) -> None:
    """The --init reaper at PID 1: runs the command as its child, forwards signals, reaps every zombie."""
    child = os.fork()
    if child == 0:
        try:
            execute(args, env, errfd)  # which sets every signal back to its default
        except ExecFailed as err:
            os.write(errfd, f"{err}\n".encode())
            os._exit(err.code)
    os.close(errfd)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        pid, status = os.wait()
        if pid == child:
            os._exit(status_code(status))


def handshake(sync: tuple[int, int] | None, mark: bytes) -> bool:
    """Tell our parent we reached `mark` and wait for its word: G to go on."""
    assert sync is not None, "a sync point without the sync pipes"
    os.write(sync[1], mark)
    return os.read(sync[0], 1) == b"G"


def read_config(argv: list[str]) -> tuple[str, dict, dict, tuple[int, int] | None] | None:
    """(bundle, spec, extras, sync pipes) from BUNDLE/helper.marshal, or with `- ERRFD CONFIGFD ...` from a pipe
    that our parent fills once the container is ready (we were started early, to have our start-up
    behind us by then); None when it closes the pipe without a word (the container is not to run)."""
    sync = (int(argv[-2]), int(argv[-1])) if len(argv) > 3 else None
    # the spec and overlay come as marshal data: json would cost this process a good part of its start-up
    if argv[0] != "-":
        with open(os.path.join(argv[0], "helper.marshal"), "rb") as f:
            return (argv[0], *marshal.load(f), sync)
    fd, chunks = int(argv[2]), []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return (*marshal.loads(b"".join(chunks)), sync) if chunks else None


def main(argv: list[str]) -> int:
    errfd = int(argv[1])
    # a killed `imagetool run` (or build) takes its container with it, as a killed runc does not
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        return EXIT_SETUP  # our parent is already gone
    config = read_config(argv)
    if config is None:
        return EXIT_SETUP
    bundle, spec, extra, sync = config
    flags = 0
    for ns in spec["linux"].get("namespaces", []):
        if ns.get("path"):
            raise OSError(95, f"joining a namespace ({ns['type']}) is not supported")
        flags |= linux.NAMESPACE_FLAGS[ns["type"]]
    if extra.get("userns"):  # rootless: a user namespace first, its id maps written by our parent
        try:
            linux.unshare(linux.CLONE_NEWUSER)
        except OSError as err:
            os.write(errfd, f"creating a user namespace: {err.strerror}\n".encode())
            return EXIT_SETUP
        if not handshake(sync, b"R"):
            return EXIT_SETUP
        flags &= ~linux.CLONE_NEWUSER
    # only the PID namespace (it applies to our children) and the network's here; PID 1 unshares the rest
    # for itself, so that this process keeps the host's mounts and pivot_root cannot move its root
    early = flags & (linux.CLONE_NEWPID | linux.CLONE_NEWNET)
    try:
        linux.unshare(early)
    except OSError as err:
        os.write(errfd, f"creating namespaces: {err.strerror}\n".encode())
        return EXIT_SETUP
    if extra.get("netstack"):  # our parent attaches slirp4netns to our netns while PID 1 builds its root
        assert sync is not None, "a private network without the sync pipes"
        os.write(sync[1], b"N")
    ours = theirs = None
    if spec["process"].get("terminal"):
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # PID 1 joins its cgroup before it starts anything, and before the cgroup namespace; we move it there
    joined = os.pipe() if extra.get("cgroup") else None
    child = os.fork()
    if child == 0:
        code = EXIT_SETUP
        try:
            if ours is not None:
                ours.close()
            if joined is not None:
                os.close(joined[1])
            linux.unshare(flags & ~early & ~(linux.CLONE_NEWCGROUP if joined is not None else 0))
            go = sync if extra.get("netstack") else None
            if sync is not None and go is None:
                os.close(sync[0])
                os.close(sync[1])
            container_main(bundle, spec, extra, errfd, theirs, go, joined[0] if joined is not None else None)
        except ExecFailed as err:
            os.write(errfd, f"{err}\n".encode())
            code = err.code
        except BaseException as err:  # noqa: BLE001 - reported on the error pipe, never a traceback
            os.write(errfd, f"setting up the container: {err}\n".encode())
        os._exit(code)
    if joined is not None:
        os.close(joined[0])
        place(extra["cgroup"], child, joined[1], errfd)
    os.close(errfd)
    if sync is not None:
        os.close(sync[0])
        os.close(sync[1])
    master = None
    if ours is not None:
        theirs.close()  # type: ignore[union-attr]
        import socket

        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        ours.close()
        master = fds[0] if fds else None
    for sig in FORWARDED:
        signal.signal(sig, _forwarder(child, master))
    if master is not None:
        return status_code(relay(master, child))
    while True:
        pid, status = os.waitpid(child, 0)
        if pid == child:
            return status_code(status)


def _forwarder(child: int, master: int | None):  # type: ignore[no-untyped-def]
    def forward(sig: int, _frame: object) -> None:
        if sig == signal.SIGWINCH and master is not None:
            copy_winsize(0, master)
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass
    return forward


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
