"""Retries with exponential backoff for temporary failures (connection errors, 5xx, 429 + Retry-After).

Each retry is announced on stderr in the words of containers/common (which skopeo and buildah use):
`Failed, retrying in 1s ... (1/3). Error: ...`, so a slow failure is never a silent one. Errors that
cannot heal (unknown host, rejected certificate, 401 after credentials, a timeout) are not temporary.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from imagetool.errors import ImagetoolError, describe
from imagetool.registry.errors import TooManyRequests

T = TypeVar("T")

MAX_DELAY = 30.0


def is_temporary(err: BaseException) -> bool:
    return isinstance(err, ImagetoolError) and err.temporary


def go_duration(seconds: float) -> str:
    """A delay as Go prints a time.Duration: 250ms, 1s, 1.5s, 1m30s."""
    if seconds < 1:
        return f"{round(seconds * 1000):d}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def _to_stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


#: where retry notices go; a program using the library may point it elsewhere
notify: Callable[[str], None] = _to_stderr


def announce(delay: float, attempt: int, times: int, err: BaseException) -> None:
    """Say that attempt `attempt` (1-based) of `times` retries comes after `delay` seconds, and why."""
    notify(f"Failed, retrying in {go_duration(delay)} ... ({attempt}/{times}). Error: {describe(err)}")


@dataclass(frozen=True)
class RetryPolicy:
    """`times` extra attempts; a fixed `delay`, or backoff 0.25 s, 0.5 s, 1 s ... capped at MAX_DELAY."""

    times: int = 3
    delay: float | None = None
    base: float = 0.25

    def wait_for(self, attempt: int, err: BaseException) -> float:
        if isinstance(err, TooManyRequests) and err.retry_after is not None:
            return min(err.retry_after, MAX_DELAY)
        if self.delay is not None:
            return self.delay
        return min(self.base * (2.0 ** attempt), MAX_DELAY)

    def pause(self, attempt: int, err: BaseException, sleep: Callable[[float], None] = time.sleep) -> None:
        """Announce and wait before retry number `attempt` + 1."""
        delay = self.wait_for(attempt, err)
        announce(delay, attempt + 1, self.times, err)
        sleep(delay)

    def run(self, fn: Callable[[], T], *, retryable: Callable[[BaseException], bool] = is_temporary,
            sleep: Callable[[float], None] = time.sleep) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - filtered by `retryable`
                if attempt >= self.times or not retryable(err):
                    raise
                self.pause(attempt, err, sleep)
                attempt += 1
