"""The executor started ahead of its container (runtime/prestart.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagetool.cli.entry import _early_executor
from imagetool.runtime import prestart
from tests.lib.cli import imagetool


def test_a_helper_nobody_takes_is_killed_and_reaped() -> None:
    end = prestart.ahead(stdin=prestart.DEVNULL)
    [helper] = prestart._waiting
    assert helper.proc.poll() is None  # started, waiting for its container
    end()
    assert prestart._waiting == [] and helper.proc.returncode == -9  # killed, not left to finish its start-up
    with pytest.raises(OSError):
        os.fstat(helper.errors)  # our end of its error pipe is closed


def test_take_gives_the_helper_started_for_the_same_streams_and_starts_another_otherwise() -> None:
    end = prestart.ahead(stdin=prestart.DEVNULL)
    try:
        waiting = prestart._waiting[0]
        other = prestart.take(None, subprocess.PIPE, subprocess.STDOUT)
        assert other is not waiting and prestart._waiting == [waiting]
        other.discard()
        assert prestart.take(prestart.DEVNULL, None, None) is waiting and prestart._waiting == []
        waiting.discard()
    finally:
        end()


def test_ahead_once_takes_over_the_helper_already_waiting_for_the_same_streams() -> None:
    first = prestart.ahead(stdin=prestart.DEVNULL)
    try:
        [waiting] = prestart._waiting
        end = prestart.ahead_once(stdin=prestart.DEVNULL)
        assert prestart._waiting == [waiting]  # no second one started
        end()
        assert prestart._waiting == [] and waiting.proc.returncode == -9
        other = prestart.ahead_once(stdin=None)  # other streams: a helper of its own
        assert [h.streams for h in prestart._waiting] == [(None, None, None)]
        other()
    finally:
        first()
    assert prestart._waiting == []


@pytest.mark.parametrize("argv, stdin", [
    (["run", "--rm", "busybox", "true"], prestart.DEVNULL),
    (["run", "-it", "--rm", "busybox", "sh"], None),
    (["run", "--interactive", "busybox", "cat", "-i"], None),
    (["run", "--rm", "busybox", "sh", "-i"], prestart.DEVNULL),  # the command's -i is not run's
    (["run", "--runtime", "embedded", "busybox", "true"], prestart.DEVNULL),
])
def test_run_starts_its_executor_before_loading_the_commands(argv: list[str], stdin: object) -> None:
    end = _early_executor(argv)
    try:
        assert end is not None and [h.streams for h in prestart._waiting] == [(stdin, None, None)]
    finally:
        if end is not None:
            end()
    assert prestart._waiting == []


@pytest.mark.parametrize("argv", [["images"], [], ["run", "--runtime", "runc", "busybox", "true"],
                                  ["run", "--runtime=runc", "busybox"], ["--debug", "run", "busybox"]])
def test_no_early_executor_where_none_would_be_taken(argv: list[str]) -> None:
    assert _early_executor(argv) is None and prestart._waiting == []


def test_a_wrong_guess_of_the_streams_costs_an_unused_executor_and_nothing_else(busybox: str) -> None:
    """-e's value ends the glance at argv before -i: the early executor has no stdin, run starts another
    one with it, and the unused one is ended and reaped."""
    proc = imagetool("run", "--rm", "-e", "A=1", "-i", busybox, "sh", "-c", 'read x; echo "$A $x"',
                     input=b"line\n")
    assert proc.stdout == "1 line\n"
    assert [pid for pid in os.listdir("/proc") if pid.isdigit() and _helper_child_of_gone(pid)] == []


def test_a_helper_closed_without_a_container_exits_at_once() -> None:
    helper = prestart.spawn(prestart.DEVNULL)
    os.close(helper.config)  # type: ignore[arg-type]
    helper.config = None
    assert helper.proc.wait(timeout=30) == 125
    helper.close_sync()
    os.close(helper.errors)


def test_run_that_fails_before_its_container_leaves_no_helper(local_store: Path) -> None:
    """The image is not there: the helper `run` started first ends with the command."""
    proc = imagetool("run", "--rm", "--pull", "never", "no-such-image", "true", check=False)
    assert proc.returncode == 125 and "not in the local store" in proc.stderr
    mine = [pid for pid in os.listdir("/proc") if pid.isdigit() and _helper_child_of_gone(pid)]
    assert mine == []


def _helper_child_of_gone(pid: str) -> bool:
    """A helper_start.py process of this worktree reparented to init (its imagetool is gone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return prestart.HELPER.encode() in cmdline and ppid == 1
