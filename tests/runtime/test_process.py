"""Exit codes, signals, env, workdir, stdin, volumes and the terminal, through `imagetool run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.processes import in_terminal, start


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return imagetool("run", "--rm", *args, check=False, **kw)  # type: ignore[arg-type]


def test_exit_codes_come_back(busybox: str) -> None:
    assert run(busybox, "sh", "-c", "exit 3").returncode == 3
    assert run(busybox, "true").returncode == 0
    assert run(busybox, "false").returncode == 1
    # a command killed by a signal: 128 + the signal (PID 1 ignores its own kill, so use --init)
    assert run("--init", busybox, "sh", "-c", "kill -9 $$").returncode == 137


@pytest.mark.parametrize("init", [[], ["--init"]])
def test_command_starts_with_default_signal_dispositions(busybox: str, init: list[str]) -> None:
    # a writer into a closed pipe dies of SIGPIPE quietly, as outside a container
    proc = run(*init, busybox, "sh", "-c", "grep SigIgn /proc/self/status; yes | head -1")
    assert proc.returncode == 0
    assert proc.stdout.split() == ["SigIgn:", "0" * 16, "y"]
    assert proc.stderr == ""


def test_missing_command_is_one_line_and_127(busybox: str) -> None:
    proc = run(busybox, "no-such-command")
    assert proc.returncode == 127
    assert "no-such-command" in one_line_error(proc)


def _start(*args: str) -> subprocess.Popen[str]:
    return start([sys.executable, "-m", "imagetool", "run", "--rm", *args])


def _wait_for(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert text in line, line


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_signals_reach_the_container(busybox: str, runtime: str) -> None:
    trap = _start("--runtime", runtime, busybox, "sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                  "while true; do sleep 0.1; done")
    _wait_for(trap, "ready")
    trap.send_signal(signal.SIGTERM)
    out, _ = trap.communicate(timeout=30)
    assert trap.returncode == 42 and "got-term" in out
    if runtime == "runc":
        return
    # with --init, a command with no handler of its own is killed by the forwarded signal
    plain = _start("--init", busybox, "sh", "-c", "echo ready; exec sleep 60")
    _wait_for(plain, "ready")
    time.sleep(0.2)
    plain.send_signal(signal.SIGTERM)
    plain.communicate(timeout=30)
    assert plain.returncode == 128 + signal.SIGTERM


def test_init_reaps_zombies(busybox: str) -> None:
    script = "sh -c 'sleep 0.2 & exec true' ; sleep 1; ps -o stat,comm | grep -c '^Z' || true"
    assert run("--init", busybox, "sh", "-c", script).stdout.strip() == "0"
    assert run("--init", busybox, "sh", "-c", "echo $PPID $$").stdout.split() == ["1", "2"]


def test_env(busybox: str) -> None:
    out = run("-e", "FOO=bar baz", "-e", "PATH=/bin", busybox, "sh", "-c", "echo $FOO; echo $PATH; echo $HOSTNAME")
    assert out.stdout.splitlines() == ["bar baz", "/bin", "container"]
    image_env = run(busybox, "env").stdout.splitlines()
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in image_env and "HOME=/root" in image_env
    # -e NAME passes this process's value on; a NAME unset here is not set in the container at all
    assert "UNSET_HERE" not in os.environ
    out = run("-e", "FROM_HOST", "-e", "UNSET_HERE", busybox, "env", env={"FROM_HOST": "h v"}).stdout.splitlines()
    assert "FROM_HOST=h v" in out and not [line for line in out if line.startswith("UNSET_HERE")]


def test_capabilities_limits_tmpfs_and_env_file(busybox: str, tmp_path: Path) -> None:
    out = run("--cap-drop", "ALL", "--cap-add", "net_bind_service", "--cap-add", "CAP_KILL", "--ulimit",
              "nproc=50:60", "--tmpfs", "/scratch:size=1m,exec", busybox, "sh", "-c",
              "grep CapEff /proc/self/status; ulimit -u; ulimit -Hu; grep ' /scratch ' /proc/mounts").stdout.split()
    # CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10
    assert out[:4] == ["CapEff:", f"{(1 << 5) | (1 << 10):016x}", "50", "60"]
    assert out[4:7] == ["tmpfs", "/scratch", "tmpfs"] and "size=1024k" in out[7] and "noexec" not in out[7]
    # the default set (a private network's: no CAP_NET_RAW), less one
    assert run("--cap-drop", "chown", busybox, "grep", "CapEff", "/proc/self/status").stdout.split()[1] == \
        "00000000a80405fa"
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nA=1\n\nB=two words\nFROM_HOST\nB_OVER=file\n")
    out = run("--env-file", str(env_file), "-e", "B_OVER=flag", busybox, "sh", "-c",
              'echo "$A|$B|$FROM_HOST|$B_OVER"', env={"FROM_HOST": "h"}).stdout
    assert out == "1|two words|h|flag\n"
    for flags, words in ((["--cap-add", "bogus"], "unknown capability"), (["--ulimit", "nofile=9:1"], "soft limit"),
                         (["--ulimit", "what=1"], "unknown limit"), (["--tmpfs", "relative"], "absolute")):
        bad = run(*flags, busybox, "true")
        assert bad.returncode == 125 and words in one_line_error(bad)


def test_entrypoint_flag(busybox: str) -> None:
    assert run("--entrypoint", "echo", busybox, "via", "entrypoint").stdout == "via entrypoint\n"
    # an empty entrypoint clears the image's, leaving the command alone
    assert run("--entrypoint", "", busybox, "echo", "cleared").stdout == "cleared\n"


def test_workdir(busybox: str) -> None:
    assert run("-w", "/tmp", busybox, "pwd").stdout.strip() == "/tmp"
    assert run("--workdir", "/new/dir", busybox, "pwd").stdout.strip() == "/new/dir"
    assert run(busybox, "pwd").stdout.strip() == "/"


def test_stdin_passes_through_with_i(busybox: str) -> None:
    data = b"line one\nline two\n" * 1000
    proc = imagetool("run", "--rm", "-i", busybox, "sha256sum", input=data)
    import hashlib

    assert proc.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    # without -i the command reads nothing
    assert imagetool("run", "--rm", busybox, "wc", "-c", input=data).stdout.strip() == "0"


def test_volumes(busybox: str, tmp_path: Path) -> None:
    rw = tmp_path / "rw"
    rw.mkdir()
    (rw / "in.txt").write_text("from host")
    ro = tmp_path / "ro"
    ro.mkdir()
    out = run("-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro", busybox, "sh", "-c",
              "cat /data/in.txt; echo; echo back > /data/out.txt; touch /ro/x && echo RO-WRITTEN; echo ok")
    assert out.stdout.splitlines() == ["from host", "ok"]
    assert (rw / "out.txt").read_text() == "back\n"
    assert not (ro / "x").exists()
    bad = run("-v", f"{tmp_path}/missing:/m", busybox, "true")
    assert bad.returncode == 125 and "does not exist" in one_line_error(bad)


def test_terminal_with_t(busybox: str) -> None:
    out, code = in_terminal([sys.executable, "-m", "imagetool", "run", "--rm", "-t", busybox, "sh", "-c",
                             "test -t 0 && test -t 1 && echo TTY-$(tty | cut -c1-8); exit 5"])
    assert b"TTY-/dev/pts" in out
    assert code == 5


def test_image_from_another_transport_is_copied_in(tmp_path: Path, local_store: Path) -> None:
    from tests.lib.images import busybox_image

    busybox_image(tmp_path / "layout", "v1")
    out = imagetool("run", "--rm", f"oci:{tmp_path / 'layout'}:v1", "echo", "from-oci")
    assert out.stdout == "from-oci\n"
    assert "localhost/layout " in imagetool("images").stdout
    missing = run(f"oci:{tmp_path / 'nothing'}:v1", "true")
    assert missing.returncode == 125 and one_line_error(missing)
    unknown = run("sha256:" + "ab" * 32, "true")
    assert unknown.returncode == 125 and "not found" in one_line_error(unknown)
    # a name not in the store is pulled; when that fails, the line says both (port 1: nothing listens)
    dead = run("127.0.0.1:1/absent", "true")
    assert dead.returncode == 125
    assert "127.0.0.1:1/absent:latest is not in the local store, and pulling" in one_line_error(dead)


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_interactive_terminal_reads_what_we_type(busybox: str, runtime: str) -> None:
    # typed at once: input that arrives before the container starts is kept
    out, code = in_terminal([sys.executable, "-m", "imagetool", "run", "--rm", "-it", "--runtime", runtime, busybox,
                             "sh", "-c", "read x; echo got-$x; tty; exit 3"], typed=b"typed\r", quiet=10)
    assert b"got-typed\r\n/dev/pts/0" in out
    assert code == 3



def _ignoring_and_blocking() -> None:
    """What nohup and a shell's background job leave a command with, and a blocked mask on top."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM})


@pytest.mark.parametrize(("runtime", "init"), [("embedded", []), ("embedded", ["--init"]), ("runc", [])])
def test_signals_the_caller_ignores_or_blocks_are_at_their_defaults_inside(
        busybox: str, init: list[str], runtime: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "imagetool", "run", "--rm", "--runtime", runtime, *init, busybox,
                           "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
                          capture_output=True, text=True, timeout=120, preexec_fn=_ignoring_and_blocking)
    assert proc.returncode == 0, proc.stderr
    blocked, ignored = proc.stdout.split()[1::2]
    assert ignored == "0" * 16
    if runtime == "embedded":  # runc unblocks only the signals its Go runtime handles (SIGUSR2 stays blocked)
        assert blocked == "0" * 16
