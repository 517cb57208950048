"""Retries with exponential backoff for temporary failures (connection errors, 5xx, 429 + Retry-After)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from imagetool.errors import ImagetoolError
from imagetool.registry.errors import TooManyRequests

T = TypeVar("T")

MAX_DELAY = 30.0


def is_temporary(err: BaseException) -> bool:
    return isinstance(err, ImagetoolError) and err.temporary


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
        return min(self.base * (2 ** attempt), MAX_DELAY)

    def run(self, fn: Callable[[], T], *, retryable: Callable[[BaseException], bool] = is_temporary,
            sleep: Callable[[float], None] = time.sleep) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - filtered by `retryable`
                if attempt >= self.times or not retryable(err):
                    raise
                sleep(self.wait_for(attempt, err))
                attempt += 1
