"""Runtime fixtures: the busybox test image in the test's local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.copy import copy_image
from imagetool.transports import parse_image_name
from tests.lib.images import busybox_image


@pytest.fixture
def busybox(tmp_path: Path, local_store: Path) -> str:
    """The name `busybox` in the local store: Debian's static busybox with /etc/passwd and /etc/group."""
    layout = tmp_path / "busybox-layout"
    busybox_image(layout, "latest")
    copy_image(parse_image_name(f"oci:{layout}:latest"), parse_image_name("busybox"))
    return "busybox"
