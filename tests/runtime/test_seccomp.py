"""Seccomp in every way a container runs: Docker's default profile, unconfined, and a profile file.

Each probe makes the calls the profile exists to block (keyctl, add_key, perf_event_open,
userfaultfd, io_uring_setup, new user namespaces through unshare or clone, clone3) with the
sysprobe program and prints one row per call. Every way (embedded and runc, root and rootless,
`run` and a build RUN) must give the same rows; unconfined, the same calls reach the kernel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from tests.lib import sysprobe
from tests.lib.cli import imagetool, one_line_error
from tests.lib.probes import Prober, Way, ways

ATTACKS = ("keyctl", "add_key", "perf_event_open", "userfaultfd", "io_uring_setup", "clone_newuser",
           "unshare_user", "clone3", "socket_vsock", "personality_read_implies_exec")
#: what Docker's default profile answers; the last rows are allowed calls, which must stay allowed
CONFINED = [
    "Seccomp:\t2",
    "busybox unshare -U: denied",
    "keyctl: EPERM", "add_key: EPERM", "perf_event_open: EPERM", "userfaultfd: EPERM", "io_uring_setup: EPERM",
    "clone_newuser: EPERM", "unshare_user: EPERM",
    "clone3: ENOSYS",        # so that libc falls back to clone, whose flags the filter can see
    "socket_vsock: EPERM", "personality_read_implies_exec: EPERM",
    "fchmodat2: ENOSYS",     # newer than any call the profile names: as on an older kernel
    "getpid: ok", "clone_plain: ok", "personality_linux32: ok",
]
SCRIPT = ("grep '^Seccomp:' /proc/self/status; "
          "if busybox unshare -U true 2>/dev/null; then echo 'busybox unshare -U: allowed'; "
          "else echo 'busybox unshare -U: denied'; fi; "
          + sysprobe.command(*ATTACKS, "fchmodat2", "getpid", "clone_plain", "personality_linux32"))


@pytest.fixture(scope="module")
def sysprobe_dir() -> Iterator[Path]:
    with sysprobe.compiled() as directory:
        yield directory


def _rows(prober: Prober, way: Way, probe_dir: Path, *flags: str) -> list[str]:
    result = prober.probe(way, SCRIPT, flags=(*sysprobe.volume(probe_dir), *flags))
    assert result.code == 0, result.stderr
    return result.lines


@pytest.mark.parametrize("way", ways())
def test_default_profile_blocks_the_kernel_attack_surface(prober: Prober, way: Way, sysprobe_dir: Path) -> None:
    assert _rows(prober, way, sysprobe_dir) == CONFINED


@pytest.mark.parametrize("way", ways())
def test_unconfined_reaches_the_kernel(prober: Prober, way: Way, sysprobe_dir: Path) -> None:
    rows = dict(line.split(": ", 1) if ": " in line else line.split(":\t") for line in
                _rows(prober, way, sysprobe_dir, "--security-opt", "seccomp=unconfined"))
    assert rows["Seccomp"] == "0"
    # the kernel's own answers to the harmless arguments, where the filter said EPERM/ENOSYS
    assert rows["add_key"] == "EINVAL" and rows["perf_event_open"] == "EFAULT"
    assert rows["userfaultfd"] == "EINVAL" and rows["clone3"] == "EINVAL"
    assert rows["io_uring_setup"] in ("EFAULT", "EINVAL")
    assert rows["keyctl"] == "ok"


@pytest.mark.parametrize("way", ways())
def test_profile_file_in_dockers_format(prober: Prober, way: Way) -> None:
    """A profile that allows everything but mkdir/mkdirat, which fail with the profile's errno (EACCES)."""
    where = prober.context_dir(way)
    profile = where / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"name": "keyctl", "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}],
    }))
    if way.rootless:
        assert prober.user is not None
        prober.user.give(where)
    script = ("grep '^Seccomp:' /proc/self/status; mkdir /tmp/made 2>&1; echo mkdir=$?; "
              "touch /tmp/file && echo touch=$?")
    result = prober.probe(way, script, flags=("--security-opt", f"seccomp={profile}"))
    assert result.code == 0, result.stderr
    assert result.lines == ["Seccomp:\t2", "mkdir: can't create directory '/tmp/made': Permission denied",
                            "mkdir=1", "touch=0"]


@pytest.mark.parametrize("way", ways(rootless=False, mode="run"))
def test_capabilities_open_their_calls(prober: Prober, way: Way, sysprobe_dir: Path) -> None:
    """As in Docker, CAP_SYS_ADMIN brings back the namespace calls and clone3 (the capability then decides)."""
    result = prober.probe(way, sysprobe.command("clone3", "unshare_user", "perf_event_open"),
                          flags=(*sysprobe.volume(sysprobe_dir), "--cap-add", "SYS_ADMIN"))
    assert result.lines == ["clone3: EINVAL", "unshare_user: ok", "perf_event_open: EFAULT"]


def test_malformed_profile_is_one_line_and_125(busybox: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    for text, words in [('{"defaultAction": ', "not valid JSON"),
                        ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "NOPE"}]}',
                         "unknown action 'NOPE'"),
                        ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
                         '"action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
                         "argument index 7")]:
        bad.write_text(text)
        for runtime in ("embedded", "runc"):
            proc = imagetool("run", "--rm", "--runtime", runtime, "--security-opt", f"seccomp={bad}", busybox, "true",
                             check=False)
            assert proc.returncode == 125
            line = one_line_error(proc)
            assert str(bad) in line and words in line


def test_security_opt_keys(busybox: str, tmp_path: Path) -> None:
    ok = imagetool("run", "--rm", "--security-opt", "no-new-privileges", "--security-opt", "seccomp:unconfined",
                   busybox, "grep", "^NoNewPrivs:", "/proc/self/status")
    assert ok.stdout.split() == ["NoNewPrivs:", "1"]
    for value, words in [("apparmor=unconfined", "unknown option"), ("label=disable", "unknown option"),
                         ("no-new-privileges=false", "always run with no-new-privileges"),
                         ("seccomp=", "unknown option")]:
        proc = imagetool("run", "--rm", "--security-opt", value, busybox, "true", check=False)
        assert proc.returncode == 125
        assert words in one_line_error(proc)


def test_build_refuses_a_malformed_profile(busybox: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    (tmp_path / "bad.json").write_text("[]")
    proc = imagetool("build", "--security-opt", f"seccomp={tmp_path / 'bad.json'}", str(tmp_path), check=False)
    assert proc.returncode != 0
    assert "expected a JSON object" in one_line_error(proc)


MORE_CAPS = tuple(f"--cap-add={c}" for c in ("SYS_ADMIN", "SYS_PTRACE", "PERFMON", "BPF", "SYS_NICE",
                                              "DAC_READ_SEARCH"))


@pytest.mark.parametrize("caps", [(), MORE_CAPS, ("--cap-drop", "ALL")], ids=["default", "more", "none"])
def test_executors_agree_row_by_row(prober: Prober, sysprobe_dir: Path, caps: tuple[str, ...]) -> None:
    """The capability-conditional rules resolve the same for runc and the helper, whatever the kernel answers."""
    rows = {executor: _rows(prober, Way(executor, False, "run"), sysprobe_dir, *caps)
            for executor in ("embedded", "runc")}
    assert rows["embedded"] == rows["runc"]
    assert rows["embedded"][0] == "Seccomp:\t2"
