"""Progress reporting: bars on a terminal, plain lines in CI logs, nothing with --quiet."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from imagetool.descriptor import Descriptor
from imagetool.digest import Readable, VerifyingReader, close_quietly, verifier_behind


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n:.1f}GiB"


class _Counting:
    """Counts bytes read through it for a progress line."""

    def __init__(self, raw: Readable, task: _Task) -> None:
        self._raw = raw
        self._task = task

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._task.advance(len(data))
        return data

    def readable(self) -> bool:
        return True

    @property
    def verifier(self) -> VerifyingReader | None:
        """The digest check of the counted stream (its bytes pass unchanged), for digest.verifier_of."""
        return verifier_behind(self._raw)

    def close(self) -> None:
        close_quietly(self._raw)


class _Task:
    def __init__(self, progress: Progress, kind: str, desc: Descriptor) -> None:
        self.progress = progress
        self.label = f"Copying {kind} {desc.digest.short}"
        self.total = desc.size
        self.done = 0

    def wrap(self, stream: Readable) -> Readable:
        return _Counting(stream, self) if self.progress.tty else stream

    def advance(self, n: int) -> None:
        self.done += n
        self.progress.done += n
        self.progress.redraw()

    def finish(self, note: str = "done") -> None:
        self.progress.finish(self, note)


class Progress:
    """One reporter per copy; safe to use from the blob threads."""

    def __init__(self, out: TextIO | None = None, quiet: bool = False, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self.tty = (self.out.isatty() if tty is None else tty) and not quiet
        self._lock = threading.Lock()
        self._active: list[_Task] = []
        self._drawn = 0
        self._last = 0.0
        #: bytes of every blob this copy has started, and of those bytes, how many are through
        self.total = 0
        self.done = 0

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self._clear()
            self.out.write(text + "\n")
            self._draw()
            self.out.flush()

    def blob(self, kind: str, desc: Descriptor) -> _Task:
        task = _Task(self, kind, desc)
        if self.tty:
            with self._lock:
                self._active.append(task)
                self.total += desc.size
        return task

    def finish(self, task: _Task, note: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if task in self._active:
                self._active.remove(task)
                self.done += max(0, task.total - task.done)  # skipped, or its size was not known exactly
            self._clear()
            self.out.write(f"{task.label} {note}\n")
            self._draw()
            self.out.flush()

    def redraw(self) -> None:
        now = time.monotonic()
        if not self.tty or now - self._last < 0.1:
            return
        with self._lock:
            self._last = now
            self._clear()
            self._draw()
            self.out.flush()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\x1b[1A\x1b[2K" * self._drawn)
            self._drawn = 0

    def _draw(self) -> None:
        if not self.tty:
            return
        rows = [(task.label, task.done, task.total) for task in self._active]
        if len(rows) > 1:
            rows.append(("Total", self.done, self.total))
        for label, done, total in rows:
            bar = "=" * int((done / total if total else 0.0) * 30)
            self.out.write(f"{label} [{bar:<30}] {_size(done)} / {_size(total)}\n")
        self._drawn = len(rows)

