"""oci: destinations: names appear only at commit, a failed copy into a new layout leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.copy import CopyOptions, copy_image
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch
from imagetool.store.layout import LayoutStore
from imagetool.transports import parse_image_name
from imagetool.transports.oci import LayoutDestination
from tests.lib.cli import imagetool, tool
from tests.lib.images import random_image


def _names(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return sorted((d.get("annotations") or {}).get("org.opencontainers.image.ref.name", "") for d in index["manifests"])


def test_signature_tag_appears_only_at_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sha256-<hex>.sig attachment is named in index.json together with the image, not before."""
    random_image(tmp_path / "src", "v1", n_layers=1)
    (tmp_path / "pw").write_text("secret\n")
    imagetool("generate-key", "--output-prefix", str(tmp_path / "k"), "--passphrase-file", str(tmp_path / "pw"))
    imagetool("--insecure-policy", "copy", "-q", "--sign-by-sigstore-private-key", str(tmp_path / "k.private"),
              "--sign-passphrase-file", str(tmp_path / "pw"), "--sign-identity", "example.com/app:v1",
              f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/signed")
    dst = tmp_path / "dst"
    seen_at_commit: list[list[str]] = []
    real_commit = LayoutDestination.commit

    def observed_commit(self: LayoutDestination) -> None:
        seen_at_commit.append(_names(dst))
        real_commit(self)

    monkeypatch.setattr(LayoutDestination, "commit", observed_commit)
    result = copy_image(parse_image_name(f"dir:{tmp_path}/signed"), parse_image_name(f"oci:{dst}:v1"), CopyOptions())
    assert seen_at_commit == [[]]
    assert _names(dst) == sorted(["v1", f"sha256-{result.digest.hex}.sig"])
    tool(["umoci", "stat", "--image", f"{dst}:v1"])


def test_failed_copy_into_a_new_layout_leaves_nothing(tmp_path: Path) -> None:
    bad = random_image(tmp_path / "bad", "v1", n_layers=2, size=100_000)
    store = LayoutStore.open(tmp_path / "bad")
    layer = Digest.parse(json.loads(store.read_blob(bad.digest))["layers"][1]["digest"])
    data = bytearray(store.blob_path(layer).read_bytes())
    data[-100] ^= 0xFF
    store.blob_path(layer).write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy_image(parse_image_name(f"oci:{tmp_path}/bad:v1"), parse_image_name(f"oci:{tmp_path}/new:v1"))
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DigestMismatch):
        copy_image(parse_image_name(f"oci:{tmp_path}/bad:v1"), parse_image_name(f"oci:{tmp_path}/empty:v1"))
    assert list((tmp_path / "empty").iterdir()) == []
    # a layout that was there keeps what it held (orphan blobs are gc's)
    random_image(tmp_path / "old", "keep", seed=3)
    with pytest.raises(DigestMismatch):
        copy_image(parse_image_name(f"oci:{tmp_path}/bad:v1"), parse_image_name(f"oci:{tmp_path}/old:v1"))
    assert _names(tmp_path / "old") == ["keep"]
    tool(["umoci", "stat", "--image", f"{tmp_path}/old:keep"])


def test_layouts_we_write_hold_only_oci_files(tmp_path: Path) -> None:
    """No lock files in a layout a user names: what other OCI tools write, and nothing else."""
    random_image(tmp_path / "src", "v1", n_layers=2)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/ours:v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/ours:v2")
    imagetool("delete", f"oci:{tmp_path}/ours:v2")
    top = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert top == ["blobs", "index.json", "oci-layout"]
    assert not [p for p in (tmp_path / "ours").rglob(".*")]
    tool(["umoci", "stat", "--image", f"{tmp_path}/ours:v1"])
