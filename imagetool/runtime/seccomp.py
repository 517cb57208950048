"""A Docker seccomp profile + the container's capabilities -> the runtime spec's `linux.seccomp`.

Docker's profile format (defaultAction, defaultErrnoRet, architectures or archMap, syscalls with
names/name, action, errnoRet, args, includes/excludes by caps, arches and minKernel) is what
`--security-opt seccomp=FILE` reads and what imagetool.runtime.seccomp_default holds. As Docker
does when it writes a container's spec, the rules are resolved here, once: a rule whose
`includes` the container does not meet, or whose `excludes` it meets, is left out, and the
archMap entry of this machine becomes the filter's architecture list. runc then applies the
result; imagetool.runtime.seccomp_bpf compiles the same section for the embedded helper.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from imagetool.errors import ContainerError

ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"}
OPERATORS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ"}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}
#: uname machine -> (Go's name for it, which profiles' "arches" use; libseccomp's name)
MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "i686": ("386", "SCMP_ARCH_X86"), "i386": ("386", "SCMP_ARCH_X86"), "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"), "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"), "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}
UNCONFINED = "unconfined"
DEFAULT = "default"


class ProfileError(ContainerError):
    """A seccomp profile that is not valid JSON or not of Docker's profile format."""


def load_profile(path: str) -> dict[str, Any]:
    """A Docker seccomp profile file, checked (ProfileError names the file and what is wrong)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise ProfileError(f"seccomp profile {path}: {err.strerror}") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise ProfileError(f"seccomp profile {path}: not valid JSON: {err}") from err
    try:
        check_profile(data)
    except ValueError as err:
        raise ProfileError(f"seccomp profile {path}: {err}") from err
    return data  # type: ignore[no-any-return]


def check_profile(data: Any) -> None:
    """Raise ValueError unless `data` is a profile runc could apply (Docker accepts no less)."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if data.get("architectures") and data.get("archMap"):
        raise ValueError("both 'architectures' and 'archMap' are given; use one")
    action = data.get("defaultAction", "")
    if action and action not in ACTIONS:
        raise ValueError(f"unknown defaultAction {action!r}")
    if not action and data.get("syscalls"):
        raise ValueError("syscalls are listed but there is no defaultAction")
    _check_int(data.get("defaultErrnoRet"), "defaultErrnoRet")
    for flag in data.get("flags") or []:
        if flag not in FLAGS:
            raise ValueError(f"unknown flag {flag!r}")
    for entry in data.get("archMap") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("architecture"), str):
            raise ValueError("archMap entries need an 'architecture'")
    syscalls = data.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ValueError("'syscalls' must be a list")
    for n, rule in enumerate(syscalls):
        _check_rule(rule, n)


def _check_rule(rule: Any, n: int) -> None:
    where = f"syscalls[{n}]"
    if not isinstance(rule, dict):
        raise ValueError(f"{where}: expected an object")
    names = rule.get("names") or []
    if rule.get("name"):
        if names:
            raise ValueError(f"{where}: both 'name' and 'names' are given; use one")
        names = [rule["name"]]
    if not names or not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"{where}: no syscall names")
    if rule.get("action") not in ACTIONS:
        raise ValueError(f"{where}: unknown action {rule.get('action')!r}")
    _check_int(rule.get("errnoRet"), f"{where}.errnoRet")
    for arg in rule.get("args") or []:
        if not isinstance(arg, dict):
            raise ValueError(f"{where}: args entries must be objects")
        index = arg.get("index")
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise ValueError(f"{where}: argument index {index!r} is not 0 to 5")
        if arg.get("op") not in OPERATORS:
            raise ValueError(f"{where}: unknown operator {arg.get('op')!r}")
        for key in ("value", "valueTwo"):
            _check_int(arg.get(key), f"{where}.{key}", bits=64)
    for key in ("includes", "excludes"):
        cond = rule.get(key)
        if cond is None:
            continue
        if not isinstance(cond, dict):
            raise ValueError(f"{where}.{key}: expected an object")
        for field in ("caps", "arches"):
            if not all(isinstance(x, str) for x in cond.get(field) or []):
                raise ValueError(f"{where}.{key}.{field}: expected strings")
        if cond.get("minKernel") is not None:
            _kernel_version(cond["minKernel"], f"{where}.{key}.minKernel")


def _check_int(value: Any, what: str, bits: int = 16) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits):
        raise ValueError(f"{what}: {value!r} is not a number of {bits} bits")


def _kernel_version(text: Any, what: str = "kernel version") -> tuple[int, int]:
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor.partition(".")[0].partition("-")[0] or 0)
    except ValueError as err:
        raise ValueError(f"{what}: {text!r} is not a kernel version like 4.8") from err


def machine() -> str:
    return os.uname().machine


def resolve(profile: dict[str, Any] | None, capabilities: Sequence[str], *, arch: str | None = None,
            kernel: str | None = None) -> dict[str, Any] | None:
    """The spec's linux.seccomp for `profile` in a container holding `capabilities` (None: unconfined).

    `arch` is a uname machine (default this one's), `kernel` a release (default this one's),
    as Docker evaluates them on the host that runs the container.
    """
    if profile is None or (not profile.get("defaultAction") and not profile.get("syscalls")):
        return None
    goarch, native = MACHINES.get(arch or machine(), (arch or machine(), ""))
    running = _kernel_version((kernel or os.uname().release))
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            architectures = [native, *(entry.get("subArchitectures") or [])]
            break
    if architectures:
        out["architectures"] = architectures
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, goarch, running):
            continue
        entry = {"names": list(rule.get("names") or [rule["name"]]), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [{"index": a["index"], "value": a.get("value", 0), "valueTwo": a.get("valueTwo", 0),
                              "op": a["op"]} for a in rule["args"]]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def _applies(rule: dict[str, Any], caps: set[str], goarch: str, kernel: tuple[int, int]) -> bool:
    excludes = rule.get("excludes") or {}
    if goarch in (excludes.get("arches") or []):
        return False
    if any(c in caps for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= _kernel_version(excludes["minKernel"]):
        return False
    includes = rule.get("includes") or {}
    if includes.get("arches") and goarch not in includes["arches"]:
        return False
    if not all(c in caps for c in includes.get("caps") or []):
        return False
    if includes.get("minKernel") and kernel < _kernel_version(includes["minKernel"]):
        return False
    return True


def for_spec(choice: str | dict[str, Any] | None, capabilities: Sequence[str]) -> dict[str, Any] | None:
    """linux.seccomp for RunOptions.seccomp: "default" (Docker's profile), "unconfined"/None, or a profile."""
    if choice is None or choice == UNCONFINED:
        return None
    if choice == DEFAULT:
        from imagetool.runtime.seccomp_default import profile

        return resolve(profile(), capabilities)
    if isinstance(choice, str):
        raise ContainerError(f"unknown seccomp profile {choice!r}")
    return resolve(choice, capabilities)
