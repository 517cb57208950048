"""images / tag / rmi / prune on the local store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image


def _names() -> list[str]:
    return sorted(n for image in json.loads(imagetool("images", "--json").stdout) for n in image["Names"])


def test_tag_rmi_prune_cycle(tmp_path: Path, local_store: Path) -> None:
    desc = random_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    imagetool("tag", "localhost/app:1", "busybox", "quay.io/x/y:2")
    assert _names() == ["docker.io/library/busybox:latest", "localhost/app:1", "quay.io/x/y:2"]
    table = imagetool("images").stdout.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(line.split()[:2] == ["docker.io/library/busybox", "latest"] for line in table)
    image_id = imagetool("images", "-q").stdout.split()[0]
    assert imagetool("inspect", "-f", "{{.Digest}}", image_id).stdout.strip() == str(desc.digest)
    assert "several names" in one_line_error(imagetool("rmi", image_id, check=False))
    imagetool("rmi", "busybox", "quay.io/x/y:2")
    assert _names() == ["localhost/app:1"]
    blobs = local_store / "blobs" / "sha256"
    assert len(list(blobs.iterdir())) == 5
    imagetool("rmi", "localhost/app:1")
    assert _names() == [] and list(blobs.iterdir()) == []


def test_prune_removes_orphans_only(tmp_path: Path, local_store: Path) -> None:
    random_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    orphan = local_store / "blobs" / "sha256" / ("0" * 64)
    orphan.write_bytes(b"orphan")
    out = imagetool("prune")
    assert out.stdout.split() == ["sha256:" + "0" * 64]
    assert not orphan.exists()
    imagetool("inspect", "localhost/app:1")


def test_rmi_and_tag_errors(local_store: Path) -> None:
    assert "not found" in one_line_error(imagetool("rmi", "localhost/none:1", check=False))
    assert "not found" in one_line_error(imagetool("tag", "localhost/none:1", "x", check=False))
