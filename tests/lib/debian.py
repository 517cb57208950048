"""A Debian base image made with debootstrap: once per test session, imported into a test's store on demand."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lib.cli import imagetool

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBIAN_IMAGE = f"localhost/debian:{SUITE}"


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minbase root filesystem (about 200 MiB, ~25 s from the Debian mirror the machine's apt uses)."""
    root = tmp_path_factory.mktemp("debian") / "rootfs"
    done = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


@pytest.fixture
def debian_image(debian_rootfs: Path) -> str:
    """The Debian rootfs as an image in this test's local store; returns its name."""
    imagetool("import", "-q", "-c", 'CMD ["/bin/bash"]', str(debian_rootfs), DEBIAN_IMAGE)
    return DEBIAN_IMAGE
