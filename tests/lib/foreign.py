"""Foreign-architecture test data: Debian's arm64 static busybox as a base image, and qemu in binfmt_misc.

The arm64 busybox comes from Debian's archive (`apt-get download busybox-static:arm64`, once per
session; scripts/install-deps adds the arm64 architecture to apt). The emulator registration is
machine-wide: `qemu_arm64` registers qemu-aarch64-static with the F flag only when nothing runs
aarch64 programs yet, and removes what it added at the end of the session; a test that needs "no
emulator" asks for a platform nobody registers (see `unregistered_platform`) instead of removing one.
"""

from __future__ import annotations

import platform as host
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagetool import media
from imagetool.descriptor import Descriptor, Platform
from imagetool.manifest import Index
from imagetool.runtime import binfmt
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.images import busybox_files, make_layer, write_image

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
QEMU_AARCH64 = "/usr/bin/qemu-aarch64-static"
DEBIAN_BINFMTS = Path("/usr/share/binfmts")


def registration_line(name: str) -> str:
    """Debian's registration of `name` (qemu-aarch64) as update-binfmts writes it: its magic, mask and
    interpreter (the -binfmt-P link, so qemu keeps each program's argv[0]), flags P and F."""
    fields: dict[str, str] = {}
    for line in (DEBIAN_BINFMTS / name).read_text().splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    flags = ("P" if fields.get("preserve") == "yes" else "") + ("F" if fields.get("fix_binary") == "yes" else "")
    assert "F" in flags, f"{DEBIAN_BINFMTS / name} does not ask for the F flag"
    return (f":{name}:M:{fields.get('offset', '0')}:{fields['magic']}:{fields['mask']}:"
            f"{fields['interpreter']}:{flags}")


def _mount_binfmt_misc() -> None:
    if not (binfmt.BINFMT_MISC / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt.BINFMT_MISC)], check=True)


@pytest.fixture(scope="session")
def qemu_arm64() -> Iterator[binfmt.Entry]:
    """An enabled F-flag registration running aarch64 programs (this machine's, or one made here)."""
    assert Path(QEMU_AARCH64).exists(), "qemu-user-static is missing: scripts/install-deps installs it"
    _mount_binfmt_misc()
    arm64 = Platform("arm64", "linux")
    found = [e for e in binfmt.entries() if all(e.matches(h) for h in binfmt.ELF["arm64"].headers())]
    added = None
    if not any(e.enabled and "F" in e.flags for e in found):
        assert not any(e.name == "qemu-aarch64" for e in found), \
            "qemu-aarch64 is registered without the F flag: `update-binfmts --disable qemu-aarch64` first"
        (binfmt.BINFMT_MISC / "register").write_text(registration_line("qemu-aarch64"))
        added = binfmt.BINFMT_MISC / "qemu-aarch64"
    entry = binfmt.emulator(arm64)
    assert entry is not None
    yield entry
    if added is not None and added.exists():
        added.write_text("-1")  # leave the machine's registrations as they were


@pytest.fixture(scope="session")
def unregistered_platform() -> str:
    """A foreign platform no binfmt_misc entry runs (the test that needs "no emulator" builds for it)."""
    for arch in ("s390x", "riscv64", "ppc64le", "mips64le", "loong64"):
        elf = binfmt.ELF[arch]
        if arch != HOST_ARCH and not any(any(e.matches(h) for h in elf.headers()) for e in binfmt.entries()):
            return f"linux/{arch}"
    raise AssertionError("every candidate platform has an emulator registered on this machine")


@pytest.fixture(scope="session")
def arm64_busybox(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Debian's static busybox for arm64 (downloaded once per session)."""
    where = tmp_path_factory.mktemp("arm64-deb")
    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "download", "busybox-static:arm64"], cwd=where, capture_output=True,
                              text=True, timeout=300)

    got = download()
    if got.returncode != 0:  # lists older than the mirror (the version moved on): read them again, once
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
        got = download()
    assert got.returncode == 0, f"apt-get download busybox-static:arm64 (scripts/install-deps adds arm64 " \
                                f"to apt): {got.stderr[-1000:]}"
    [deb] = where.glob("*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(where / "root")], check=True)
    data = (where / "root" / "bin" / "busybox").read_bytes()
    assert data[:4] == b"\x7fELF" and data[18:20] == b"\xb7\x00", "not an aarch64 ELF program"
    return data


def busybox_platform_index(path: Path, arm64: bytes, name: str = "latest", variant: str = "v8") -> None:
    """An OCI index of two busybox images: this machine's and Debian's arm64 one (its entry's variant
    `variant`, as Docker Hub's arm64 entries carry v8; the config says none, as many arm64 images)."""
    config = {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]}
    native = write_image(path, None, [make_layer(busybox_files(), "gzip", True)], config=config,
                         architecture=HOST_ARCH)
    foreign = write_image(path, None, [make_layer({**busybox_files(), "bin/busybox": arm64}, "gzip", True)],
                          config=config, architecture="arm64", create=False)
    store = LayoutStore.open(path)
    index = Index.build(media.OCI_INDEX, [
        native.with_(platform=Platform(HOST_ARCH, "linux"), annotations={}),
        foreign.with_(platform=Platform("arm64", "linux", variant), annotations={})])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), name)])
