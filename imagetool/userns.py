"""The store's user namespace: work on files as a rootless container sees them.

A rootless container runs in a user namespace where the caller is 0 and its subordinate
ranges (/etc/subuid, /etc/subgid) follow from 1. Its files on disk are owned by the
host-side ids (caller, 100000+k...). Unpacking layers, diffing upperdirs, copying with
--chown and removing trees all have to happen with the same mapping, or layers carry
host ids and containers see flattened owners; an unprivileged process cannot even chown
to or delete files of subordinate ids from outside. So that work runs in a forked child
that enters a new user namespace with that mapping (as `buildah unshare` does): the
kernel then shows and takes container-side ids, ids outside the map read as the
overflow id 65534, and namespaced file capabilities read back in their plain form.

As root, or already inside a user namespace (e.g. under `imagetool unshare`), or without
subordinate ranges, there is nothing to map: `mapping()` is None and callers work in place.
Standard library and errors.py only: store, layer and runtime all use it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from imagetool.errors import ContainerError, ImagetoolError

T = TypeVar("T")
IdMap = list[tuple[int, int, int]]   # (inside, outside, count), as /proc/PID/uid_map
CLONE_NEWUSER = 0x10000000
_CHUNK = 1 << 20
_inside = False


@dataclass(frozen=True)
class Mapping:
    uids: IdMap
    gids: IdMap

    def text(self) -> str:
        """One line naming the mapping (what a store records to know its files' ids are still right)."""
        return " ".join(["uids", *(f"{a}:{b}:{c}" for a, b, c in self.uids),
                         "gids", *(f"{a}:{b}:{c}" for a, b, c in self.gids)])


def subordinate(path: str, user: str, uid: int) -> tuple[int, int] | None:
    """The first range /etc/subuid (or subgid) gives `user` (by name or number): (start, count)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


@functools.lru_cache(maxsize=1)
def initial() -> bool:
    """Whether this process is in the initial user namespace (where host ids are the ids)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            lines = f.read().split("\n")
    except OSError:
        return True
    return [line.split() for line in lines if line.strip()] == [["0", "0", "4294967295"]]


def privileged() -> bool:
    """Root of the initial namespace: may make devices and set trusted.* xattrs."""
    return os.geteuid() == 0 and initial()


def mapping() -> Mapping | None:
    """The store's mapping for this (unprivileged) user: caller as 0, its subordinate range from 1.

    None when there is nothing to map: root, already in a user namespace, no subordinate
    ranges, or no newuidmap/newgidmap to write them.
    """
    return None if _inside else _host_mapping()


@functools.lru_cache(maxsize=1)
def _host_mapping() -> Mapping | None:
    if os.geteuid() == 0 or not initial():
        return None
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return None
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    sub_u, sub_g = subordinate("/etc/subuid", name, uid), subordinate("/etc/subgid", name, uid)
    if not sub_u or not sub_g:
        return None
    return Mapping([(0, uid, 1), (1, sub_u[0], sub_u[1])], [(0, gid, 1), (1, sub_g[0], sub_g[1])])


def needed() -> bool:
    return mapping() is not None


def own_ids() -> Mapping:
    """Only the caller, as 0: what an unprivileged process may map without newuidmap."""
    return Mapping([(0, os.getuid(), 1)], [(0, os.getgid(), 1)])


def write_maps(pid: int, m: Mapping) -> None:
    """Give `pid`'s new user namespace the mapping (newuidmap/newgidmap are setuid helpers)."""
    if m == own_ids():
        try:
            for name, text in (("uid_map", f"0 {os.getuid()} 1\n"), ("setgroups", "deny"),
                               ("gid_map", f"0 {os.getgid()} 1\n")):
                with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
                    f.write(text)
        except OSError as err:
            raise ContainerError(f"writing the user namespace id maps: {err}") from err
        return
    for tool, idmap in (("newuidmap", m.uids), ("newgidmap", m.gids)):
        args = [str(v) for entry in idmap for v in entry]
        try:
            proc = subprocess.run([tool, str(pid), *args], capture_output=True, text=True)
        except OSError as err:
            raise ContainerError(f"{tool}: {err}") from err
        if proc.returncode != 0:
            raise ContainerError(f"{tool}: {proc.stderr.strip() or 'failed'}")


def _unshare() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWUSER): {os.strerror(err)}")


class Child:
    """fn(*args) in a forked child inside a new user namespace with `m`; `wait()` returns what it returned.

    The child inherits every descriptor but pipes: it keeps only the pipe ends named in
    `child_keeps` (and 0-2), so a caller can stream through a pipe it made before, while a pipe
    another thread made for its own child is never held open here (its reader would wait for
    an end-of-file that comes only when this child exits). The result comes back pickled.
    """

    def __init__(self, m: Mapping, fn: Callable[..., Any], args: tuple[Any, ...],
                 child_keeps: tuple[int, ...] = ()) -> None:
        import ctypes  # noqa: F401 - loaded before the fork: the child imports nothing
        import pickle  # noqa: F401

        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        self._result_r, result_w = os.pipe()
        self.status = 0
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            _child(ready_w, go_r, result_w, child_keeps, fn, args)
        for fd in (ready_w, go_r, result_w):
            os.close(fd)
        try:
            if os.read(ready_r, 1) == b"R":
                try:
                    write_maps(self.pid, m)
                except ContainerError:
                    os.write(go_w, b"N")
                    raise
                os.write(go_w, b"G")
        except BaseException:
            self._reap()
            raise
        finally:
            os.close(ready_r)
            os.close(go_w)

    def _reap(self) -> bytes:
        chunks = []
        try:
            while True:
                data = os.read(self._result_r, _CHUNK)
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(self._result_r)
            self.status = os.waitpid(self.pid, 0)[1]
        return b"".join(chunks)

    def wait(self) -> Any:
        import pickle

        raw = self._reap()
        if not raw:
            raise ContainerError("the user namespace helper process died")
        ok, value = pickle.loads(raw)
        if ok:
            return value
        raise value


def _close_other_pipes(keep: set[int]) -> None:
    """Close every pipe end above stderr but `keep`: ours to the parent, and the ones of other threads."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.close(fd)
            except OSError:
                pass  # the directory listing's own descriptor, gone by now


def _child(ready_w: int, go_r: int, result_w: int, keeps: tuple[int, ...], fn: Callable[..., Any],
           args: tuple[Any, ...]) -> None:
    global _inside
    import pickle

    code = 0
    try:
        _close_other_pipes({ready_w, go_r, result_w, *keeps})
        try:
            _unshare()
            os.write(ready_w, b"R")
            if os.read(go_r, 1) != b"G":
                os._exit(125)
            _inside = True
            initial.cache_clear()
            result = (True, fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the parent
            result = (False, err)
        try:
            payload = pickle.dumps(result)
            pickle.loads(payload)  # errors whose __init__ takes other arguments pickle but do not load
        except Exception:  # an unpicklable result or error: its message still gets through
            value = result[1]
            if result[0]:
                plain = ImagetoolError(f"{getattr(fn, '__qualname__', fn)} returned nothing that can leave "
                                       "the user namespace")
            elif isinstance(value, ImagetoolError):
                plain = ImagetoolError(str(value))
                plain.exit_code = value.exit_code
            else:
                plain = ImagetoolError(f"{type(value).__name__}: {value}")
            payload = pickle.dumps((False, plain))
        view = memoryview(payload)
        while view:
            view = view[os.write(result_w, view):]
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def call(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) with the store's mapping (in place when there is none)."""
    m = mapping()
    if m is None:
        return fn(*args)
    return Child(m, fn, args).wait()  # type: ignore[no-any-return]


def _piped_child(m: Mapping, fn: Callable[[], Any], theirs: int, ours: int) -> Child:
    """fn() in a Child that keeps `theirs`, one end of a pipe whose other end, `ours`, stays with us: each
    side closes the end it does not use (and we both, when the child could not be started)."""
    try:
        child = Child(m, fn, (), child_keeps=(theirs,))
    except BaseException:
        os.close(ours)
        os.close(theirs)
        raise
    os.close(theirs)
    return child


@contextlib.contextmanager
def _killed_on_failure(child: Child) -> Iterator[None]:
    """Kill and reap `child` when the block fails: nobody will stream to or from it any more."""
    try:
        yield
    except BaseException:
        os.kill(child.pid, signal.SIGKILL)
        child._reap()
        raise


class _FramedWriter:
    """The child's side of produce(): each write() goes through the pipe as one length-prefixed frame."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes | memoryview) -> int:
        size = len(data)
        if size:
            view = memoryview(size.to_bytes(8, "big") + bytes(data))
            while view:
                view = view[os.write(self._fd, view):]
        return size

    def flush(self) -> None:
        pass


def produce(fn: Callable[[BinaryIO], None], out: BinaryIO) -> None:
    """fn(writer) with the store's mapping, what it writes copied into `out` (a stream of this process).

    Each write reaches `out` as the same write: gzip (isal) output depends on how its input
    is cut, and a layer must compress to the same bytes as root's.
    """
    m = mapping()
    if m is None:
        fn(out)
        return
    r, w = os.pipe()

    def inside() -> None:
        try:
            fn(_FramedWriter(w))  # type: ignore[arg-type]
        finally:
            os.close(w)

    child = _piped_child(m, inside, theirs=w, ours=r)
    with _killed_on_failure(child), os.fdopen(r, "rb", buffering=_CHUNK) as pipe:
        while True:
            head = pipe.read(8)
            if len(head) < 8:
                break  # the end, or the child failed: wait() says which
            size = int.from_bytes(head, "big")
            data = pipe.read(size)
            if len(data) < size:
                break
            out.write(data)
    child.wait()


def consume(fn: Callable[[BinaryIO], T], source: BinaryIO) -> T:
    """fn(reader) with the store's mapping, reading what `source` (a stream of this process) gives."""
    m = mapping()
    if m is None:
        return fn(source)
    r, w = os.pipe()

    def inside() -> T:
        with os.fdopen(r, "rb", buffering=_CHUNK) as pipe:
            value = fn(pipe)  # type: ignore[arg-type]
            while pipe.read(_CHUNK):  # the rest, so the feeder never blocks on a full pipe
                pass
            return value

    child = _piped_child(m, inside, theirs=r, ours=w)
    broken = False
    with _killed_on_failure(child):
        try:
            with os.fdopen(w, "wb", buffering=0) as pipe:
                while True:
                    data = source.read(_CHUNK)
                    if not data:
                        break
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[pipe.write(view):]
                    except BrokenPipeError:
                        broken = True  # the child stopped reading: its error says why
                        break
        except BrokenPipeError:
            broken = True
    value = child.wait()
    if broken:
        raise ContainerError("the user namespace helper stopped reading")
    return value  # type: ignore[no-any-return]


def _rmtree(path: str) -> None:
    """rmtree through directories without write (read-only layers) or read permission (overlay's work/work)."""
    def retry(func, p, exc):  # type: ignore[no-untyped-def]
        if func in (os.rmdir, os.unlink, os.remove):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            func(p)
        elif func in (os.open, os.scandir, os.listdir):
            os.chmod(p, stat.S_IRWXU)
            shutil.rmtree(p, onerror=retry)
        else:
            raise exc[1]

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """rmtree that gets through read-only directories and, rootless, files of subordinate ids."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    if mapping() is None:
        _rmtree(path)
        return
    try:
        _rmtree(path)  # most trees are the caller's alone: no process to start
    except OSError:
        call(_rmtree, path)


@contextlib.contextmanager
def temporary_directory(prefix: str, dir: str | None = None) -> Iterator[str]:
    """tempfile.TemporaryDirectory whose removal also gets through files of subordinate ids."""
    path = tempfile.mkdtemp(prefix=prefix, dir=dir)
    try:
        yield path
    finally:
        remove_tree(path)


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """`argv` in the store's user namespace (as `buildah unshare`); its exit status, 128+N for signal N.

    Without subordinate ranges that namespace maps the caller alone; as root there is none.
    """
    m = mapping()
    if m is None and os.geteuid() != 0 and initial():
        m = own_ids()
    if m is None:
        try:
            proc = subprocess.run(argv, env=env)
        except OSError as err:
            raise _exec_error(argv[0], err) from err
        return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    child = Child(m, os.execvpe, (argv[0], argv, env))
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        raw = child._reap()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if raw:  # exec failed: the child sent its error
        import pickle

        _ok, error = pickle.loads(raw)
        if isinstance(error, OSError):
            raise _exec_error(argv[0], error)
        raise error
    code = os.waitstatus_to_exitcode(child.status)
    return code if code >= 0 else 128 - code


def _exec_error(command: str, err: OSError) -> ContainerError:
    """As a shell says it: 127 for a missing command, 126 for one that cannot run."""
    missing = isinstance(err, FileNotFoundError)
    error = ContainerError(f"{command}: {'command not found' if missing else err.strerror}")
    error.exit_code = 127 if missing else 126
    return error
