"""Fixtures shared by the builder's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.copy import copy_image
from imagetool.transports import parse_image_name
from tests.build.test_fidelity import BASE
from tests.lib.images import busybox_image


@pytest.fixture
def base(tmp_path: Path, local_store: Path) -> Path:
    """The busybox base in this test's store as BASE; returns its OCI layout (for buildah)."""
    layout = tmp_path / "base-layout"
    busybox_image(layout, "latest")
    copy_image(parse_image_name(f"oci:{layout}:latest"), parse_image_name(BASE))
    return layout
