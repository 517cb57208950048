"""skopeo's global --command-timeout: Go durations, and a deadline that ends the command in one line.

The deadline is a SIGALRM in the main thread: the CommandTimeout it raises unwinds the command
(temp files are removed, locks released) and the CLI edge prints it. Should something swallow it,
a watchdog ends the process a few seconds later anyway.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading

from imagetool.errors import ImagetoolError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
GRACE = 5.0


class CommandTimeout(ImagetoolError):
    pass


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration ("30s", "1m30s", "1.5h", "300ms"); ValueError when it is not one."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"invalid duration {text!r}")
    return -total if text.startswith("-") else total


def arm(seconds: float, text: str) -> None:
    """End the command with CommandTimeout after `seconds` (nothing when not positive)."""
    if seconds <= 0:
        return

    def expire(signum: int, frame: object) -> None:
        message = f"command timed out after {text}"
        watchdog = threading.Timer(GRACE, _hard_exit, args=(message,))
        watchdog.daemon = True
        watchdog.start()
        raise CommandTimeout(message)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _hard_exit(message: str) -> None:
    try:
        sys.stderr.write(f"imagetool: {message}\n")
        sys.stderr.flush()
    finally:
        os._exit(1)
