"""The seccomp generator (Docker's profile + capabilities -> linux.seccomp) and the BPF compiler, without containers.

The compiled program is also loaded into a forked child here, so the filter's answers are
checked where they come from, not only through a container.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagetool.runtime import seccomp, seccomp_bpf
from imagetool.runtime.flags import security_options
from imagetool.runtime.seccomp_default import CLONE_NAMESPACE_FLAGS, profile
from imagetool.runtime.spec import DEFAULT_CAPABILITIES, RunOptions, build_spec
from imagetool.errors import ContainerError


def _allowed(section: dict[str, Any]) -> set[str]:
    """Names allowed unconditionally."""
    return {n for r in section["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def _rules(section: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in section["syscalls"] if name in r["names"]]


def test_default_profile_for_default_capabilities() -> None:
    section = seccomp.resolve(profile(), DEFAULT_CAPABILITIES, arch="x86_64", kernel="6.1.0")
    assert section is not None
    assert section["defaultAction"] == "SCMP_ACT_ERRNO" and section["defaultErrnoRet"] == errno.EPERM
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(section)
    assert {"read", "execve", "arch_prctl", "ptrace", "chroot"} <= allowed  # chroot: CAP_SYS_CHROOT is default
    for blocked in ("keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd", "io_uring_setup",
                    "io_uring_enter", "unshare", "setns", "mount", "bpf", "open_by_handle_at", "kexec_load",
                    "reboot", "init_module", "s390_runtime_instr", "set_tls"):
        assert blocked not in allowed, blocked
    [clone] = _rules(section, "clone")
    assert clone["args"] == [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    [clone3] = _rules(section, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == errno.ENOSYS
    assert sorted(r["args"][0]["value"] for r in _rules(section, "personality")) == \
        [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    [socket] = _rules(section, "socket")
    assert socket["args"] == [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]


def test_capability_rules_appear_only_with_the_capability() -> None:
    base = seccomp.resolve(profile(), DEFAULT_CAPABILITIES, arch="x86_64", kernel="6.1.0")
    admin = seccomp.resolve(profile(), [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], arch="x86_64", kernel="6.1.0")
    assert base is not None and admin is not None
    assert {"unshare", "setns", "mount", "clone", "clone3", "bpf"} <= _allowed(admin)
    assert all("args" not in r for r in _rules(admin, "clone"))  # the namespace-flag filter is excluded
    assert not any(r["action"] == "SCMP_ACT_ERRNO" for r in _rules(admin, "clone3"))
    no_chroot = seccomp.resolve(profile(), [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"],
                                arch="x86_64", kernel="6.1.0")
    assert no_chroot is not None and "chroot" not in _allowed(no_chroot)
    for cap, name in [("CAP_SYS_PTRACE", "kcmp"), ("CAP_SYS_TIME", "settimeofday"), ("CAP_SYS_MODULE", "init_module"),
                      ("CAP_PERFMON", "perf_event_open"), ("CAP_BPF", "bpf"), ("CAP_SYSLOG", "syslog"),
                      ("CAP_SYS_NICE", "mbind"), ("CAP_DAC_READ_SEARCH", "open_by_handle_at")]:
        with_cap = seccomp.resolve(profile(), [*DEFAULT_CAPABILITIES, cap], arch="x86_64", kernel="6.1.0")
        assert with_cap is not None and name in _allowed(with_cap) and name not in _allowed(base), cap


def test_architecture_and_kernel_rules() -> None:
    arm = seccomp.resolve(profile(), DEFAULT_CAPABILITIES, arch="aarch64", kernel="6.1.0")
    assert arm is not None
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert {"set_tls", "cacheflush"} <= _allowed(arm) and "arch_prctl" not in _allowed(arm)
    s390 = seccomp.resolve(profile(), DEFAULT_CAPABILITIES, arch="s390x", kernel="6.1.0")
    assert s390 is not None
    [clone] = _rules(s390, "clone")
    assert clone["args"][0]["index"] == 1  # s390 passes clone's flags second
    old = seccomp.resolve(profile(), DEFAULT_CAPABILITIES, arch="x86_64", kernel="4.4.0")
    assert old is not None and "ptrace" not in _allowed(old)  # minKernel 4.8
    old_ptrace = seccomp.resolve(profile(), [*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"], arch="x86_64", kernel="4.4.0")
    assert old_ptrace is not None and "ptrace" in _allowed(old_ptrace)


def test_build_spec_carries_the_section_unless_unconfined() -> None:
    spec = build_spec({}, RunOptions(args=["true"]))
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "seccomp" not in build_spec({}, RunOptions(args=["true"], seccomp="unconfined"))["linux"]
    admin = build_spec({}, RunOptions(args=["true"], capabilities=[*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]))
    assert "unshare" in _allowed(admin["linux"]["seccomp"])


def test_docker_profile_format_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"},
                     {"names": ["write"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
                     {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}))
    section = seccomp.resolve(seccomp.load_profile(str(path)), [], arch="x86_64")
    assert section == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "architectures": ["SCMP_ARCH_X86_64"],
                       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                    {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                                     "args": [{"index": 1, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]}
    assert security_options([f"seccomp={path}"]) == seccomp.load_profile(str(path))
    assert security_options(["seccomp=unconfined", "no-new-privileges:true"]) == "unconfined"
    assert security_options([]) == "default"
    for bad, words in [
        ([], "expected a JSON object"),
        ({"syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}]}, "no defaultAction"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]},
         "both 'name' and 'names'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                                                          "args": [{"index": 0, "op": "EQ"}]}]}, "unknown operator"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                                                          "includes": {"minKernel": "four"}}]}, "kernel version"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["a"], "archMap": [{"architecture": "a"}]},
         "both 'architectures' and 'archMap'"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(seccomp.ProfileError) as caught:
            seccomp.load_profile(str(path))
        assert str(caught.value).startswith(f"seccomp profile {path}: ") and words in str(caught.value)
    with pytest.raises(ContainerError, match="unknown option"):
        security_options(["mask=/proc"])


def _in_child(program: bytes, calls: list[tuple[int, tuple[int, ...]]]) -> list[int]:
    """Load `program` in a forked child (with no_new_privs) and make raw syscalls; their errnos (0: success)."""
    from imagetool.runtime import linux

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            linux.load_seccomp(program)
            libc = ctypes.CDLL(None, use_errno=True)
            out = []
            for number, args in calls:
                rc = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
                out.append(ctypes.get_errno() if rc == -1 else 0)
            os.write(write_end, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)  # type: ignore[no-any-return]


def _number(name: str) -> int:
    """This machine's number for a syscall, from libseccomp's tables."""
    from imagetool.runtime.libseccomp import Library

    number = Library(seccomp_bpf.library_path()).resolve(name)
    assert number is not None and number > 0
    return number


def test_compiled_default_filter_answers_like_the_profile(tmp_path: Path) -> None:
    section = seccomp.resolve(profile(), DEFAULT_CAPABILITIES)
    assert section is not None
    program = seccomp_bpf.program(section, cache=str(tmp_path))
    assert len(program) % 8 == 0 and len(program) // 8 < 4096
    assert list(tmp_path.iterdir()) and seccomp_bpf.program(section, cache=str(tmp_path)) == program  # cached
    keyctl, unshare, getpid, clone3, personality = map(_number, ("keyctl", "unshare", "getpid", "clone3",
                                                                 "personality"))
    fchmodat2 = 452  # the same on every architecture; newer than any call the profile names
    answers = _in_child(program, [(keyctl, (0, -3, 0)), (unshare, (0x10000000,)), (getpid, ()),
                                  (clone3, (0, 0)), (fchmodat2, (-1, 0, 0, 0)), (personality, (0x0400000,)),
                                  (personality, (0xFFFFFFFF,))])
    assert answers == [errno.EPERM, errno.EPERM, 0, errno.ENOSYS, errno.ENOSYS, errno.EPERM, 0]


def test_custom_errno_and_default_allow(tmp_path: Path) -> None:
    section = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
                            {"names": ["no_such_call_anywhere"], "action": "SCMP_ACT_ERRNO"}]}
    program = seccomp_bpf.compile_section(section)
    assert _in_child(program, [(_number("getppid"), ()), (_number("getpid"), ())]) == [errno.EACCES, 0]


def test_cache_is_trusted_only_when_nobody_else_could_write_it(tmp_path: Path) -> None:
    section = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}
    cache = tmp_path / "cache"
    program = seccomp_bpf.program(section, cache=str(cache))
    [entry] = cache.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600 and entry.read_bytes() == program
    entry.write_bytes(b"\0" * 8)  # a planted program (one instruction) ...
    assert seccomp_bpf.program(section, cache=str(cache)) == b"\0" * 8  # ... is used when it is ours alone
    entry.chmod(0o666)
    assert seccomp_bpf.program(section, cache=str(cache)) == program  # not when others could have written it
    entry.chmod(0o600)
    entry.write_bytes(b"\0" * 8)
    cache.chmod(0o777)
    assert seccomp_bpf.program(section, cache=str(cache)) == program
