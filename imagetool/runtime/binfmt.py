"""Which foreign platforms this machine can execute: qemu user-mode emulators registered in binfmt_misc.

A container of another architecture runs its programs through the kernel's binfmt_misc: an
entry whose magic/mask matches the program's ELF header names the interpreter (qemu-aarch64-static).
Inside a container that interpreter's path does not exist, so only an entry with the F flag
(the kernel opened the interpreter when it was registered) works there. imagetool reads the
entries before it starts anything and refuses, naming the emulator and its Debian package,
rather than letting the first RUN step fail with "exec format error".
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagetool.descriptor import Platform, host_platform, platform_matches
from imagetool.errors import ContainerError

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
PACKAGE = "qemu-user-static"


@dataclass(frozen=True)
class Elf:
    """What an architecture's programs say in their ELF header, and qemu's name for it."""

    bits64: bool
    little: bool
    machine: int
    qemu: str

    def headers(self) -> list[bytes]:
        """The first 20 bytes of an executable and of a position-independent one of this architecture."""
        ident = b"\x7fELF" + bytes([2 if self.bits64 else 1, 1 if self.little else 2, 1]) + bytes(9)
        order = "<" if self.little else ">"
        return [ident + struct.pack(f"{order}HH", kind, self.machine) for kind in (2, 3)]  # ET_EXEC, ET_DYN


#: GOARCH (what image configs say) -> its programs' ELF header fields
ELF = {
    "amd64": Elf(True, True, 62, "x86_64"),
    "386": Elf(False, True, 3, "i386"),
    "arm64": Elf(True, True, 183, "aarch64"),
    "arm": Elf(False, True, 40, "arm"),
    "ppc64le": Elf(True, True, 21, "ppc64le"),
    "ppc64": Elf(True, False, 21, "ppc64"),
    "s390x": Elf(True, False, 22, "s390x"),
    "riscv64": Elf(True, True, 243, "riscv64"),
    "mips64le": Elf(True, True, 8, "mips64el"),
    "mips64": Elf(True, False, 8, "mips64"),
    "mipsle": Elf(False, True, 8, "mipsel"),
    "mips": Elf(False, False, 8, "mips"),
    "loong64": Elf(True, True, 258, "loongarch64"),
}


def elf_arch(header: bytes) -> str | None:
    """The architecture (GOARCH) an ELF program's first 20 bytes say it is for; None if not one we know."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    bits64, little = header[4] == 2, header[5] == 1
    (machine,) = struct.unpack("<H" if little else ">H", header[18:20])
    return next((arch for arch, e in ELF.items() if (e.bits64, e.little, e.machine) == (bits64, little, machine)),
                None)


@dataclass(frozen=True)
class Entry:
    """One binfmt_misc registration (a file under /proc/sys/fs/binfmt_misc)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    @classmethod
    def parse(cls, name: str, text: str) -> Entry | None:
        """An ELF-magic entry; None for an extension entry (`extension .exe`) or one we cannot read."""
        fields: dict[str, str] = {}
        lines = text.splitlines()
        for line in lines[1:]:
            key, _, value = line.partition(" ")
            fields[key.rstrip(":")] = value.strip()
        if "magic" not in fields:
            return None
        try:
            magic = bytes.fromhex(fields["magic"])
            mask = bytes.fromhex(fields["mask"]) if fields.get("mask") else b"\xff" * len(magic)
            offset = int(fields.get("offset", "0"))
        except ValueError:
            return None
        return cls(name, bool(lines) and lines[0] == "enabled", fields.get("interpreter", ""),
                   fields.get("flags", ""), offset, magic, mask)

    def matches(self, header: bytes) -> bool:
        """Whether the kernel would hand a program starting with `header` to this entry."""
        part = header[self.offset:self.offset + len(self.magic)]
        if len(part) < len(self.magic):
            return False
        return all(h & m == g & m for h, g, m in zip(part, self.magic, self.mask, strict=True))


def entries(root: Path = BINFMT_MISC) -> list[Entry]:
    """The registrations; none when binfmt_misc is not mounted or is switched off."""
    try:
        if (root / "status").read_text().strip() != "enabled":
            return []
        names = sorted(p.name for p in root.iterdir() if p.name not in ("status", "register"))
    except OSError:
        return []
    out = []
    for name in names:
        try:
            entry = Entry.parse(name, (root / name).read_text())
        except OSError:
            continue
        if entry is not None:
            out.append(entry)
    return out


def native(platform: Platform, host: Platform | None = None) -> bool:
    """Whether this machine's CPU runs the platform's programs itself."""
    host = host or host_platform()
    return platform.os == host.os and platform.architecture == host.architecture


def emulator(platform: Platform, root: Path = BINFMT_MISC) -> Entry | None:
    """The enabled F-flag registration that runs `platform`'s programs, or None when the machine runs
    them itself. Raises ContainerError, in one line, when no usable emulator is registered."""
    if native(platform):
        return None
    host = host_platform()
    elf = ELF.get(platform.architecture)
    if platform.os != "linux" or elf is None:
        raise ContainerError(f"{platform} programs cannot be executed on this {host.os}/{host.architecture} "
                             f"machine (no known emulator for them)")
    wanted = f"qemu-{elf.qemu}"
    found = [e for e in entries(root) if all(e.matches(h) for h in elf.headers())]
    usable = next((e for e in found if e.enabled and "F" in e.flags), None)
    if usable is not None:
        return usable
    why = (f"{found[0].name} is registered without the F flag, so containers cannot reach its interpreter"
           if any(e.enabled for e in found) else
           f"{found[0].name} is registered but disabled" if found else
           f"no emulator for {elf.qemu} programs is registered in binfmt_misc"
           + ("" if (root / "register").exists() else f" ({root} is not mounted)"))
    raise ContainerError(f"{platform} programs need the {wanted} emulator on this {host.architecture} machine: "
                         f"{why}; install Debian's {PACKAGE} package (it registers {wanted}-static with "
                         f"the F flag)")


def require(config: Mapping[str, Any], asked: Platform | None = None) -> Platform | None:
    """An image (its config) can run here, as the platform asked for: refuse before the container starts
    an image of another platform than `asked`, or one whose programs need an emulator nobody registered.
    An image that declares no platform is taken as `asked`, else as the host's (None). Returns the platform."""
    arch, os_ = config.get("architecture"), config.get("os")
    platform = Platform(architecture=str(arch), os=str(os_ or "linux"), variant=str(config.get("variant") or "")) \
        if arch else asked
    if asked is not None and platform is not None and not platform_matches(asked, platform):
        raise ContainerError(f"the image is {platform}'s, not {asked}'s")
    if platform is not None:
        emulator(platform)
    return platform
