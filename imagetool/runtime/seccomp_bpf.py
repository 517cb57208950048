"""The spec's linux.seccomp -> a classic BPF program the embedded helper loads with one prctl.

Compiled here, in the imagetool process, with libseccomp (the library runc itself uses, through
ctypes): it knows every architecture's syscall numbers and the multiplexed calls, and builds the
filter exactly as runc does for the same section (rules whose action is the default dropped,
unknown names skipped, conditions on one argument each a rule of their own, the binary-tree
layout for long lists). In front of libseccomp's program goes the stub runc adds as well:
a syscall newer than every one the profile names gets ENOSYS, not the default errno, so that
libc falls back to the older call as it would on an older kernel.

The helper thus never loads libseccomp nor reads a profile; the compiled program is cached by
the hash of the section (and of the library) in the user's cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import TYPE_CHECKING, Any

from imagetool.errors import ContainerError

if TYPE_CHECKING:
    from imagetool.runtime import libseccomp

#: bump when the program's layout (the stub) changes, so cached programs are not reused
FORMAT = 1
_LIBRARY_DIRS = ("/usr/lib/{m}-linux-gnu", "/lib/{m}-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib")
_LIBRARY = "libseccomp.so.2"

_ACT_KILL_PROCESS, _ACT_KILL_THREAD, _ACT_TRAP = 0x80000000, 0x00000000, 0x00030000
_ACT_ERRNO, _ACT_TRACE, _ACT_LOG, _ACT_ALLOW = 0x00050000, 0x7FF00000, 0x7FFC0000, 0x7FFF0000
_OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
              "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
EPERM, ENOSYS = 1, 38
#: seccomp(2) filter flags by the spec's names
FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000


def action_value(name: str, errno: int | None) -> int:
    """libseccomp's (and the kernel's) return value for a spec action name."""
    if name == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ((EPERM if errno is None else errno) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ((EPERM if errno is None else errno) & 0xFFFF)
    values = {"SCMP_ACT_KILL": _ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
              "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS, "SCMP_ACT_TRAP": _ACT_TRAP, "SCMP_ACT_LOG": _ACT_LOG,
              "SCMP_ACT_ALLOW": _ACT_ALLOW}
    if name not in values:
        raise ContainerError(f"seccomp: action {name} is not supported")
    return values[name]


def library_path() -> str:
    machine = os.uname().machine
    for directory in _LIBRARY_DIRS:
        path = os.path.join(directory.format(m=machine), _LIBRARY)
        if os.path.exists(path):
            return path
    return _LIBRARY  # let the dynamic loader look


def library_id(path: str) -> str:
    """The library's identity in cache keys: a new libseccomp may know more syscall names."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def filter_flags(section: dict[str, Any]) -> int:
    """The seccomp(2) flags the section asks for (0: a plain prctl loads it)."""
    flags = 0
    for name in section.get("flags") or []:
        if name not in FILTER_FLAGS:
            raise ContainerError(f"seccomp: flag {name} is not supported")
        flags |= FILTER_FLAGS[name]
    return flags & ~FILTER_FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]  # the helper is single-threaded


def cache_dir() -> str | None:
    """$XDG_CACHE_HOME/imagetool/seccomp (or ~/.cache/...), when that home is this user's own."""
    home = os.environ.get("XDG_CACHE_HOME") or os.environ.get("HOME")
    try:
        if not home or os.stat(home).st_uid != os.geteuid():
            return None
    except OSError:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "imagetool", "seccomp")


def program(section: dict[str, Any], *, cache: str | None = "auto") -> bytes:
    """The BPF program (struct sock_filter array, native byte order) for a spec's linux.seccomp."""
    library = library_path()
    key = hashlib.sha256(json.dumps([FORMAT, library_id(library), os.uname().machine, section],
                                    sort_keys=True).encode()).hexdigest()
    where = cache_dir() if cache == "auto" else cache
    path = os.path.join(where, f"{key}.bpf") if where else None
    cached = _load(path) if path else None
    if cached:
        return cached
    compiled = compile_section(section, library)
    if path:
        _store(path, compiled)
    return compiled


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _load(path: str) -> bytes | None:
    """A cached program, if this user wrote it and nobody else could have (`sudo` may keep another user's HOME)."""
    try:
        if not _ours(os.stat(os.path.dirname(path))):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _ours(os.fstat(fd)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    return data if data and len(data) % 8 == 0 else None


def _store(path: str, data: bytes) -> None:
    """Write the cache entry by rename, so a concurrent reader sees all of it or nothing; a failure only costs speed."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def compile_section(section: dict[str, Any], library: str | None = None) -> bytes:
    """Build the filter with libseccomp and export it, with the ENOSYS stub in front."""
    from imagetool.runtime.libseccomp import Library  # ctypes and the library: only to compile

    lib = Library(library or library_path())
    default = action_value(section["defaultAction"], section.get("defaultErrnoRet"))
    ctx = lib.init(default)
    if not ctx:
        raise ContainerError(f"seccomp: cannot make a filter with default action {section['defaultAction']}")
    try:
        arches = [lib.arch(a) for a in section.get("architectures") or []]
        for token in arches:
            rc = lib.arch_add(ctx, token)
            if rc not in (0, -17):  # -EEXIST: the native one is there from the start
                raise ContainerError(f"seccomp: adding an architecture: {os.strerror(-rc)}")
        rules = section.get("syscalls") or []
        if len(rules) > 32:
            lib.set_optimize(ctx, 2)
        for rule in rules:
            _add_rule(lib, ctx, rule, default)
        body = _export(lib, ctx)
    finally:
        lib.release(ctx)
    return _enosys_stub(lib, section, arches or [lib.arch_native()], default) + body


def _add_rule(lib: libseccomp.Library, ctx: int, rule: dict[str, Any], default: int) -> None:
    action = action_value(rule["action"], rule.get("errnoRet"))
    if action == default:
        return  # redundant, and libseccomp refuses it
    args = rule.get("args") or []
    conds = [(a["index"], _OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0)) for a in args]
    indexes = [a["index"] for a in args]
    groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]  # same argument twice: OR
    for name in rule["names"]:
        number = lib.resolve(name)
        if number is None:
            continue  # a name this libseccomp does not know: skipped, as runc does
        for group in groups:
            rc = lib.rule_add(ctx, action, number, group)
            if rc < 0:
                raise ContainerError(f"seccomp: adding the rule for {name}: {os.strerror(-rc)}")


def _export(lib: libseccomp.Library, ctx: int) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = lib.export_bpf(ctx, fd)
        if rc < 0:
            raise ContainerError(f"seccomp: exporting the filter: {os.strerror(-rc)}")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


_LD_ABS, _JEQ, _JGT, _JSET, _JA, _RET = 0x20, 0x15, 0x25, 0x45, 0x05, 0x06


def _enosys_stub(lib: libseccomp.Library, section: dict[str, Any], arches: list[int], default: int) -> bytes:
    """Per architecture: a syscall number above the highest the profile names -> ENOSYS; else on to the filter.

    Nothing when the default action already allows (or is ENOSYS): unknown calls then need no help.
    """
    if default in (_ACT_ALLOW, _ACT_LOG, _ACT_ERRNO | ENOSYS) or default & 0xFFFF0000 == _ACT_TRACE:
        return b""
    names = {n for rule in section.get("syscalls") or [] for n in rule["names"]}
    highest: dict[int, dict[str, int]] = {}  # AUDIT_ARCH -> {"" or "x32": highest number}
    for token in arches:
        x32 = token != _AUDIT_ARCH_X86_64 and token & 0xFFFF == 0x3E  # libseccomp's x32 token
        top = 0
        for name in names:
            number = lib.resolve(name, token)
            if number is not None and number >= 0:
                top = max(top, number | _X32_BIT if x32 else number)
        if top:
            highest.setdefault(_AUDIT_ARCH_X86_64 if x32 else token, {})["x32" if x32 else ""] = top
    sections: list[list[tuple[int, int, int, Any]]] = []
    for audit, tops in highest.items():
        body: list[tuple[int, int, int, Any]] = [(_LD_ABS, 0, 0, 0)]
        if audit == _AUDIT_ARCH_X86_64:
            native, x32_top = tops.get(""), tops.get("x32")
            body.append((_JSET, 3, 0, _X32_BIT))
            body += _limit(native) + _limit(x32_top)
        else:
            body += _limit(tops[""])
        sections.append([(_LD_ABS, 0, 0, 4), (_JEQ, 0, len(body), audit), *body])
    flat = [insn for s in sections for insn in s]
    out = []
    for i, (code, jt, jf, k) in enumerate(flat):
        if k == "filter":  # `ja` to the first instruction of libseccomp's program, right after the stub
            k = len(flat) - (i + 1)
        out.append(_insn(code, jt, jf, k))
    return b"".join(out)


def _limit(top: int | None) -> list[tuple[int, int, int, Any]]:
    """Three instructions: above `top` -> ENOSYS, else the filter (with no `top`, straight to the filter)."""
    if top is None:
        return [(_JA, 0, 0, "filter"), (_JA, 0, 0, "filter"), (_JA, 0, 0, "filter")]
    return [(_JGT, 0, 1, top), (_RET, 0, 0, _ACT_ERRNO | ENOSYS), (_JA, 0, 0, "filter")]
