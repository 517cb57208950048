"""skopeo's global --command-timeout: a deadline (a Go duration, goduration.py) that ends the command in one line.

The deadline is a SIGALRM in the main thread: the CommandTimeout it raises unwinds the command
(temp files are removed, locks released) and the CLI edge prints it. Should something swallow it,
a watchdog ends the process a few seconds later anyway.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from imagetool.errors import ImagetoolError

GRACE = 5.0


class CommandTimeout(ImagetoolError):
    pass


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
