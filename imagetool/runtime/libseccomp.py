"""A thin ctypes binding to the few libseccomp calls that build and export a filter (Debian's libseccomp2).

Only the imagetool process loads it, and only when a filter is not in the cache yet: the helper
gets the exported program and never loads the library.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from imagetool.errors import ContainerError

_ATTR_OPTIMIZE = 8  # SCMP_FLTATR_CTL_OPTIMIZE
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class Library:
    """libseccomp at `path`; a filter context is an opaque int (a pointer)."""

    def __init__(self, path: str) -> None:
        try:
            lib = ctypes.CDLL(path, use_errno=True)
        except OSError as err:
            raise ContainerError("seccomp: libseccomp is not installed (it compiles the seccomp profile; "
                                 "--security-opt seccomp=unconfined runs without one)") from err
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self._lib = lib

    def init(self, default_action: int) -> int:
        return int(self._lib.seccomp_init(default_action) or 0)

    def release(self, ctx: int) -> None:
        self._lib.seccomp_release(ctx)

    def arch_native(self) -> int:
        return int(self._lib.seccomp_arch_native())

    def arch(self, name: str) -> int:
        """SCMP_ARCH_X86_64 -> libseccomp's token (the AUDIT_ARCH value, x32 aside)."""
        short = name.removeprefix("SCMP_ARCH_").lower()
        token = self.arch_native() if short == "native" else int(self._lib.seccomp_arch_resolve_name(short.encode()))
        if not token:
            raise ContainerError(f"seccomp: unknown architecture {name}")
        return token

    def arch_add(self, ctx: int, token: int) -> int:
        return int(self._lib.seccomp_arch_add(ctx, token))

    def set_optimize(self, ctx: int, level: int) -> None:
        self._lib.seccomp_attr_set(ctx, _ATTR_OPTIMIZE, level)  # older libraries refuse: only slower filters

    def resolve(self, name: str, arch: int | None = None) -> int | None:
        """The syscall's number (negative for libseccomp's pseudo-calls), or None when the name is unknown."""
        raw = name.encode()
        number = int(self._lib.seccomp_syscall_resolve_name(raw) if arch is None else
                     self._lib.seccomp_syscall_resolve_name_arch(arch, raw))
        return None if number == _NR_SCMP_ERROR else number

    def rule_add(self, ctx: int, action: int, number: int, conditions: Sequence[tuple[int, int, int, int]]) -> int:
        """Add a rule with (argument index, operator, datum_a, datum_b) conditions, all of which must hold."""
        array = (_ArgCmp * len(conditions))(*[_ArgCmp(*c) for c in conditions]) if conditions else None
        return int(self._lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array))

    def export_bpf(self, ctx: int, fd: int) -> int:
        return int(self._lib.seccomp_export_bpf(ctx, fd))
