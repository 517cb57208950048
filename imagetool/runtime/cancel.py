"""Ending runs from another thread: a token that kills the containers its work is waiting for.

A build runs independent stages on threads; when one fails, the containers the others run
must end now, not when their commands finish. Each such thread enters `scope(token)`; the
runtime wraps every wait for a container in `killing(kill)`, which tells the thread's token
how to end that container; `token.cancel()` calls every kill registered (and any registered
later, at once), and `check()` lets work stop between steps. Without a token, nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imagetool.errors import ImagetoolError


class Cancelled(ImagetoolError):
    """The work was cancelled: another part of it failed, or it was interrupted."""


class Token:
    """Shared by the threads of one piece of work; cancelled once, for good."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kills: dict[int, Callable[[], None]] = {}
        self._serial = 0
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            kills = list(self._kills.values())
        for kill in kills:
            _quietly(kill)

    def add(self, kill: Callable[[], None]) -> int | None:
        """Remember `kill` until `remove`; on a cancelled token it is called now and None returned."""
        with self._lock:
            if not self.cancelled:
                self._serial += 1
                self._kills[self._serial] = kill
                return self._serial
        _quietly(kill)
        return None

    def remove(self, serial: int) -> None:
        with self._lock:
            self._kills.pop(serial, None)


_local = threading.local()


def current() -> Token | None:
    """The token of this thread's work, if it has one."""
    return getattr(_local, "token", None)


@contextmanager
def scope(token: Token) -> Iterator[None]:
    """Work done in this block, on this thread, belongs to `token`."""
    previous = current()
    _local.token = token
    try:
        yield
    finally:
        _local.token = previous


@contextmanager
def killing(kill: Callable[[], None]) -> Iterator[None]:
    """While in this block, cancelling this thread's token calls `kill` (at once if it is cancelled already)."""
    token = current()
    serial = token.add(kill) if token is not None else None
    try:
        yield
    finally:
        if token is not None and serial is not None:
            token.remove(serial)


def check() -> None:
    """Raise Cancelled if this thread's work has been cancelled."""
    token = current()
    if token is not None and token.cancelled:
        raise Cancelled("cancelled")


def _quietly(kill: Callable[[], None]) -> None:
    try:
        kill()
    except OSError:  # the process has gone by itself meanwhile
        pass
