"""copy_batch: several copies at once, output and failures as if they ran one after another."""

from __future__ import annotations

import io
import threading
import time

import pytest

from imagetool.copy.batch import BatchJob, copy_batch
from imagetool.copy.progress import Progress
from imagetool.errors import DigestMismatch, ImagetoolError
from imagetool.digest import Digest


class _Text(io.StringIO):
    def isatty(self) -> bool:
        return False


def _job(i: int, log: list[str], delay: float = 0.0, fail: bool = False,
         barrier: threading.Barrier | None = None) -> BatchJob:
    def run(progress: Progress) -> None:
        if barrier is not None:
            barrier.wait(timeout=10)  # only passes when `parties` copies run at the same time
        time.sleep(delay)
        progress.line(f"image {i} step 1")
        time.sleep(delay)
        progress.line(f"image {i} step 2")
        log.append(f"ran {i}")
        if fail:
            raise DigestMismatch(Digest.of(b"a"), Digest.of(b"b"))
    return BatchJob(f"src{i} -> dst{i}", run)


def _run(jobs: list[BatchJob], parallel: int, keep_going: bool) -> tuple[str, str, object]:
    out, err = _Text(), _Text()
    try:
        result: object = copy_batch(jobs, parallel=parallel, keep_going=keep_going, quiet=False, out=out, err=err,
                                    error_prefix=lambda i: f"imagetool: src{i}: ")
    except ImagetoolError as e:
        result = e
    return out.getvalue(), err.getvalue(), result


def test_copies_run_at_once_and_print_in_order() -> None:
    log: list[str] = []
    barrier = threading.Barrier(4)
    # later images finish first: their output is held back until the earlier ones are done
    jobs = [_job(i, log, delay=0.05 * (4 - i), barrier=barrier) for i in range(4)]
    out, err, result = _run(jobs, parallel=4, keep_going=False)
    assert log == ["ran 3", "ran 2", "ran 1", "ran 0"]
    assert out == "".join(f"image {i} step 1\nimage {i} step 2\n" for i in range(4))
    assert err == "".join(f"Copying image ref {i + 1}/4: src{i} -> dst{i}\n" for i in range(4))
    assert (result.copied, result.failed) == (4, 0)  # type: ignore[attr-defined]


def test_never_more_at_once_than_asked() -> None:
    lock = threading.Lock()
    running, peak = [0], [0]

    def job(progress: Progress) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
    for parallel in (1, 3):
        peak[0] = 0
        copy_batch([BatchJob("x", job) for _ in range(8)], parallel=parallel, keep_going=False, quiet=True,
                   out=_Text(), err=_Text(), error_prefix=lambda i: "")
        assert peak[0] == parallel


def test_keep_going_reports_each_failure_in_its_place() -> None:
    log: list[str] = []
    jobs = [_job(i, log, delay=0.02 * (5 - i), fail=i in (1, 3)) for i in range(5)]
    out, err, result = _run(jobs, parallel=5, keep_going=True)
    lines = err.splitlines()
    assert lines[0] == "Copying image ref 1/5: src0 -> dst0"
    assert lines[2].startswith("imagetool: src1: ") and lines[1].startswith("Copying image ref 2/5")
    assert lines[5].startswith("imagetool: src3: ") and lines[4].startswith("Copying image ref 4/5")
    assert len(lines) == 7
    assert out == "".join(f"image {i} step 1\nimage {i} step 2\n" for i in range(5))
    assert (result.copied, result.failed) == (3, 2)  # type: ignore[attr-defined]


def test_without_keep_going_the_first_failure_ends_the_batch() -> None:
    log: list[str] = []
    # image 1 fails while image 0 is still running; images 3.. never start
    jobs = [_job(0, log, delay=0.2), _job(1, log, fail=True)] + [_job(i, log, delay=0.3) for i in range(2, 8)]
    out, err, result = _run(jobs, parallel=3, keep_going=False)
    assert isinstance(result, DigestMismatch)
    assert err == "Copying image ref 1/8: src0 -> dst0\nCopying image ref 2/8: src1 -> dst1\n"
    assert out == "image 0 step 1\nimage 0 step 2\nimage 1 step 1\nimage 1 step 2\n"
    assert "ran 0" in log  # the copy before the failure completed
    assert not {f"ran {i}" for i in range(3, 8)} & set(log)


def test_a_bug_in_one_copy_is_raised_even_with_keep_going() -> None:
    def broken(progress: Progress) -> None:
        raise RuntimeError("bug")
    with pytest.raises(RuntimeError, match="bug"):
        copy_batch([BatchJob("x", broken)], parallel=2, keep_going=True, quiet=True, out=_Text(), err=_Text(),
                   error_prefix=lambda i: "")
