"""`imagetool run` of an image in a registry: copied into the local store first, with the registry flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import busybox_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def test_run_from_a_registry(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    layout = tmp_path / "bb"
    busybox_image(layout, "latest")
    ref = plain_registry.ref("run/busybox:1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest", ref)
    # TLS is verified by default: a plain-HTTP registry is refused until the user turns it off
    refused = imagetool("run", "--rm", ref, "true", check=False)
    assert refused.returncode != 0 and one_line_error(refused)
    out = imagetool("run", "--rm", "--tls-verify=false", ref, "sh", "-c", "echo from-registry")
    assert out.stdout == "from-registry\n"
    assert f"{plain_registry.host}/run/busybox  1 " in imagetool("images").stdout
