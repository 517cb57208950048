"""Copy many images at once (sync), with the output and failure semantics of copying them one by one.

Up to `parallel` copies run in threads; they share the process-wide connection pools and the
blob-location (mount) cache. What each copy prints goes through its own slot of an
OrderedOutput: the oldest unfinished copy prints live, the others are held back until every
copy before them is done, so the output reads exactly as if the images were copied in turn.

Without keep_going the first failure (in job order) ends the batch: no later copy starts,
the output stops after the failed image's, and that failure is raised once the copies already
running have finished (a later image already copied stays copied; its output is dropped).
With keep_going each failure is reported in its place and counted.

The blob-location cache is held for the whole batch: its file is rewritten once at the end,
not after every image.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TextIO

from imagetool.copy.progress import Progress
from imagetool.errors import ImagetoolError, describe


def default_parallel_images() -> int:
    """A small multiple of the CPUs: small images spend their time waiting on round trips, not CPU."""
    return min(16, 4 * max(1, len(os.sched_getaffinity(0))))


class OrderedOutput:
    """Text from numbered writers, printed in writer order whatever order they write in."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._current = 0
        self._done = [False] * count
        self._held: list[list[tuple[TextIO, str]]] = [[] for _ in range(count)]
        self._cut: int | None = None  # nothing after this slot is printed

    def write(self, slot: int, stream: TextIO, text: str) -> None:
        with self._lock:
            if self._cut is not None and slot > self._cut:
                return
            if slot == self._current:
                stream.write(text)
                stream.flush()
            else:
                self._held[slot].append((stream, text))

    def finish(self, slot: int) -> None:
        """`slot` has written all it will: the next slot's held text comes out, and it prints live."""
        with self._lock:
            self._done[slot] = True
            while self._current < len(self._done) and self._done[self._current]:
                self._current += 1
                if self._current < len(self._done):
                    self._release(self._current)

    def cut_after(self, slot: int) -> None:
        """Drop whatever slots after `slot` have written or will write."""
        with self._lock:
            self._cut = slot if self._cut is None else min(self._cut, slot)
            for held in self._held[slot + 1:]:
                held.clear()

    def _release(self, slot: int) -> None:
        held, self._held[slot] = self._held[slot], []
        if self._cut is not None and slot > self._cut:
            return
        for stream, text in held:
            stream.write(text)
        for stream in {id(s): s for s, _ in held}.values():
            stream.flush()


class _SlotStream:
    """A text stream that writes through one slot of an OrderedOutput (Progress writes to it)."""

    def __init__(self, output: OrderedOutput, slot: int, stream: TextIO) -> None:
        self._output = output
        self._slot = slot
        self._stream = stream

    def write(self, text: str) -> int:
        self._output.write(self._slot, self._stream, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@dataclass
class BatchJob:
    label: str                                   # what the "Copying image ref" line names
    run: Callable[[Progress], None]             # the copy itself, reporting to the given Progress


@dataclass
class BatchResult:
    copied: int
    failed: int


def copy_batch(jobs: list[BatchJob], *, parallel: int, keep_going: bool, quiet: bool,
               out: TextIO, err: TextIO, error_prefix: Callable[[int], str]) -> BatchResult:
    """Run `jobs` with at most `parallel` at once; raises the first failure unless `keep_going`."""
    output = OrderedOutput(len(jobs))
    lock = threading.Lock()
    first_failure = [len(jobs)]  # the lowest job index whose failure ends the batch
    errors: list[BaseException | None] = [None] * len(jobs)
    fatal: list[BaseException | None] = [None] * len(jobs)
    live_tty = parallel == 1 and out.isatty()

    def end_at(i: int) -> None:
        with lock:
            first_failure[0] = min(first_failure[0], i)
        output.cut_after(i)

    def one(i: int) -> None:
        try:
            with lock:
                if i > first_failure[0]:
                    return  # copied one by one, this image would never have been reached
            if not quiet:
                output.write(i, err, f"Copying image ref {i + 1}/{len(jobs)}: {jobs[i].label}\n")
            progress = Progress(out=_SlotStream(output, i, out), quiet=quiet, tty=live_tty)  # type: ignore[arg-type]
            try:
                jobs[i].run(progress)
            except ImagetoolError as e:
                errors[i] = e
                if keep_going:
                    output.write(i, err, f"{error_prefix(i)}{describe(e)}\n")
                else:
                    end_at(i)
            except BaseException as e:  # noqa: BLE001 - a bug or an interrupt ends the batch either way
                errors[i] = fatal[i] = e
                end_at(i)
        finally:
            output.finish(i)

    from imagetool.registry import locations

    with locations.shared().held(), \
            ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), thread_name_prefix="sync") as pool:
        futures = [pool.submit(one, i) for i in range(len(jobs))]
        try:
            for f in futures:
                f.result()
        except BaseException:
            end_at(-1)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    for i, e in enumerate(errors):
        if e is not None and (fatal[i] is not None or not keep_going):
            raise e
    failed = sum(e is not None for e in errors)
    return BatchResult(len(jobs) - failed, failed)
