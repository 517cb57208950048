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


def test_pull_policy(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    """A bare name is pulled when missing (default), every time (--pull always), or never."""
    name = f"{plain_registry.host}/run/policy:1"
    for label in ("first", "second"):
        ctx = tmp_path / label
        ctx.mkdir()
        # two versions of one tag, each a busybox image with a file saying which it is
        busybox_image(tmp_path / f"bb-{label}", "latest")
        imagetool("copy", "-q", f"oci:{tmp_path / f'bb-{label}'}:latest", f"localhost/base-{label}:1")
        (ctx / "Dockerfile").write_text(f"FROM localhost/base-{label}:1\nRUN echo {label} > /which\n")
        imagetool("build", "-q", "--push", f"docker://{name}", "--tls-verify=false", str(ctx))
        if label == "first":
            assert imagetool("run", "--rm", "--tls-verify=false", name, "cat", "/which").stdout == "first\n"
    # the registry now holds "second": the default keeps the local copy, always pulls again
    assert imagetool("run", "--rm", "--tls-verify=false", name, "cat", "/which").stdout == "first\n"
    assert imagetool("run", "--rm", "--pull", "always", "--tls-verify=false", name, "cat",
                     "/which").stdout == "second\n"
    missing = imagetool("run", "--rm", "--pull", "never", f"{plain_registry.host}/run/absent:1", "true",
                        check=False)
    assert missing.returncode == 125 and "pull policy never" in one_line_error(missing)
