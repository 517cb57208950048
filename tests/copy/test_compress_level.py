"""--dest-compress-level reaches every layer that gets compressed, including the plain tars a docker-archive
holds under a gzip media type (compressed for real on the way to a layout or a registry)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from imagetool import media
from tests.lib.cli import imagetool
from tests.lib.images import make_layer, write_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _archive(tmp_path: Path) -> tuple[Path, str]:
    """A docker-archive whose one layer compresses well (text), and that layer's diff_id."""
    text = b"".join(b"line %d of a text that deflate shortens more the harder it tries\n" % i
                    for i in range(60_000))
    layer = make_layer({"usr/share/doc.txt": text}, "gzip", oci=False)
    write_image(tmp_path / "src", "v1", [layer], oci=False)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/a.tar:x/y:1")
    return tmp_path / "a.tar", str(layer.diff_id)


def _layer(blob: bytes, diff_id: str) -> int:
    """The layer's size, after checking it is a gzip stream of the expected tar."""
    assert blob[:2] == b"\x1f\x8b"
    assert "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() == diff_id
    return len(blob)


def _layout_layer(layout: Path) -> bytes:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    [layer] = manifest["layers"]
    digest: str = layer["digest"]
    return (layout / "blobs/sha256" / digest[7:]).read_bytes()


def test_a_plain_tar_from_a_docker_archive_is_compressed_at_the_level_asked_for(tmp_path: Path) -> None:
    archive, diff_id = _archive(tmp_path)
    sizes = {}
    for level in ("1", "9"):
        imagetool("copy", "-q", "--dest-compress-format", "gzip", "--dest-compress-level", level,
                  f"docker-archive:{archive}", f"oci:{tmp_path}/l{level}:v1")
        sizes[level] = _layer(_layout_layer(tmp_path / f"l{level}"), diff_id)
    assert sizes["9"] < sizes["1"] * 0.9, sizes



def test_a_plain_tar_from_a_docker_archive_reaches_a_registry_as_the_gzip_its_type_says(
        plain_registry: Registry, tmp_path: Path) -> None:
    """As skopeo does: the registry serves gzip under the gzip type, at the level asked for."""
    archive, diff_id = _archive(tmp_path)
    sizes = {}
    for level in ("1", "9"):
        imagetool("copy", "-q", *plain_registry.tls_flags("dest-"), "--dest-compress-level", level,
                  f"docker-archive:{archive}", plain_registry.ref(f"level/l{level}:v1"))
        manifest = plain_registry.raw_get(f"/v2/level/l{level}/manifests/v1",
                                          headers={"Accept": media.DOCKER_MANIFEST}).json()
        [layer] = manifest["layers"]
        assert layer["mediaType"] == media.DOCKER_LAYER_GZIP
        blob = plain_registry.raw_get(f"/v2/level/l{level}/blobs/{layer['digest']}").content
        assert hashlib.sha256(blob).hexdigest() == layer["digest"][7:] and len(blob) == layer["size"]
        sizes[level] = _layer(blob, diff_id)
    assert sizes["9"] < sizes["1"] * 0.9, sizes
