"""The executor started ahead of its container, so that its interpreter start-up overlaps our work.

A helper (helper_start.py) is a fresh `python -S -I`: some 20 ms of start-up before it can
unshare anything. Started first, it spends them while this process resolves the image, writes
the bundle and makes the cgroup; it then waits on a pipe for (bundle, spec, extras), which
`send` writes once the container is ready. `imagetool run` starts one before it even loads
the runtime (`ahead`); a Container takes it if its standard streams are the ones it wants,
else starts its own first thing. A helper nobody takes is killed and reaped.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import threading
from typing import Any, Callable

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper_start.py")
DEVNULL = subprocess.DEVNULL

#: helpers started by `ahead`, not yet taken (build stages on several threads take and add them)
_waiting: list[Helper] = []
_lock = threading.Lock()


class Helper:
    """A started executor: its process, the write end of its config pipe, the read end of its error
    pipe and our ends of the sync pipes (marks from it, words to it)."""

    def __init__(self, proc: subprocess.Popen[bytes], config: int, errors: int, sync: tuple[int, int],
                 streams: tuple[Any, Any, Any]) -> None:
        self.proc = proc
        self.config: int | None = config
        self.errors = errors
        self.sync: tuple[int, int] | None = sync
        self.streams = streams

    def send(self, bundle: str, spec: dict[str, Any], extra: dict[str, Any]) -> None:
        """Give the helper its container: it goes on from here."""
        assert self.config is not None, "a helper's config is sent once"
        data, fd, self.config = marshal.dumps((bundle, spec, extra)), self.config, None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BrokenPipeError:
            pass  # it is gone already: its status and error pipe say why
        finally:
            os.close(fd)

    def close_sync(self) -> None:
        if self.sync is not None:
            os.close(self.sync[0])
            os.close(self.sync[1])
            self.sync = None

    def discard(self) -> None:
        """End a helper that will run nothing."""
        if self.config is not None:
            os.close(self.config)
            self.config = None
        self.close_sync()
        os.close(self.errors)
        self.proc.kill()
        self.proc.wait()


def spawn(stdin: Any = None, stdout: Any = None, stderr: Any = None) -> Helper:
    """Start a helper; it waits for `send`."""
    errors, error_w = os.pipe()
    config_r, config = os.pipe()
    to_helper, from_helper = os.pipe(), os.pipe()
    theirs = [error_w, config_r, to_helper[0], from_helper[1]]
    ours = [errors, config, from_helper[0], to_helper[1]]
    try:
        proc = subprocess.Popen([sys.executable, "-S", "-I", HELPER, "-", *map(str, theirs)], pass_fds=theirs,
                                stdin=stdin, stdout=stdout, stderr=stderr)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return Helper(proc, config, errors, (from_helper[0], to_helper[1]), (stdin, stdout, stderr))


def ahead(stdin: Any = None, stdout: Any = None, stderr: Any = None) -> Callable[[], None]:
    """Start a helper for the next container with these streams; returns what ends it if none takes it."""
    helper = spawn(stdin, stdout, stderr)
    with _lock:
        _waiting.append(helper)
    return _ender(helper)


def ahead_once(stdin: Any = None, stdout: Any = None, stderr: Any = None) -> Callable[[], None]:
    """ahead(), unless a helper for these streams waits already (`imagetool run` starts one before it
    loads click and its commands): then what ends that one."""
    with _lock:
        for helper in _waiting:
            if helper.streams == (stdin, stdout, stderr) and helper.proc.poll() is None:
                return _ender(helper)
    return ahead(stdin, stdout, stderr)


def _ender(helper: Helper) -> Callable[[], None]:
    def end() -> None:
        with _lock:
            if helper not in _waiting:
                return
            _waiting.remove(helper)
        helper.discard()

    return end


def take(stdin: Any, stdout: Any, stderr: Any) -> Helper:
    """The helper started ahead for these streams, else a new one."""
    with _lock:
        for helper in _waiting:
            if helper.streams == (stdin, stdout, stderr) and helper.proc.poll() is None:
                _waiting.remove(helper)
                return helper
    return spawn(stdin, stdout, stderr)
