"""A Debian base image made with debootstrap: once per test session, imported into a test's store on demand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.lib.cli import imagetool

SUITE = "bookworm"
DEBIAN_IMAGE = f"localhost/debian:{SUITE}"


def apt_mirror() -> str:
    """The Debian archive this machine's apt installs from (the test command just used it)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        text = path.read_text() if path.exists() else ""
        for url in re.findall(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M):
            found = next(u for u in url if u)
            if not found.rstrip("/").endswith("-security"):
                return found
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minbase root filesystem (about 200 MiB, ~25 s from the Debian mirror the machine's apt uses)."""
    root = tmp_path_factory.mktemp("debian") / "rootfs"
    done = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), apt_mirror()],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


@pytest.fixture
def debian_image(debian_rootfs: Path) -> str:
    """The Debian rootfs as an image in this test's local store; returns its name."""
    imagetool("import", "-q", "-c", 'CMD ["/bin/bash"]', str(debian_rootfs), DEBIAN_IMAGE)
    return DEBIAN_IMAGE
