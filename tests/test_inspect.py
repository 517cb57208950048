"""inspect and manifest-digest against skopeo on the same images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import busybox_image, random_image


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    random_image(tmp_path / "lay", "rand", n_layers=3)
    random_image(tmp_path / "lay", "docker", seed=5, oci=False)
    busybox_image(tmp_path / "lay", "busybox")
    return tmp_path / "lay"


@pytest.mark.parametrize("name", ["rand", "busybox"])
def test_inspect_fields_match_skopeo(images: Path, name: str) -> None:
    ours = json.loads(imagetool("inspect", f"oci:{images}:{name}").stdout)
    theirs = json.loads(skopeo("inspect", f"oci:{images}:{name}").stdout)
    for key, value in theirs.items():
        assert ours[key] == value, key
    assert [d["Digest"] for d in ours["LayersData"]] == ours["Layers"]


@pytest.mark.parametrize("name", ["rand", "busybox"])
def test_raw_and_config_are_byte_identical_to_skopeo(images: Path, name: str) -> None:
    ref = f"oci:{images}:{name}"
    assert imagetool("inspect", "--raw", ref).stdout == skopeo("inspect", "--raw", ref).stdout
    assert imagetool("inspect", "--config", "--raw", ref).stdout == skopeo("inspect", "--config", "--raw", ref).stdout
    assert imagetool("inspect", "--config", ref).stdout == skopeo("inspect", "--config", ref).stdout


def test_format_templates_match_skopeo(images: Path) -> None:
    template = "{{.Digest}} {{.Labels}} {{.Layers}} {{.RepoTags}} {{.Created}} {{index .Labels \"test\"}} " \
               "{{range .Layers}}<{{.}}>{{end}} {{len .Layers}} {{.Os}}/{{.Architecture}}"
    ref = f"oci:{images}:rand"
    assert imagetool("inspect", "--format", template, ref).stdout == skopeo("inspect", "--format", template,
                                                                            ref).stdout
    env = json.loads(imagetool("inspect", "--format", "{{json .Env}}", ref).stdout)
    assert env == json.loads(skopeo("inspect", ref).stdout)["Env"]


def test_manifest_digest_matches_skopeo(images: Path) -> None:
    manifests = [p for p in (images / "blobs" / "sha256").iterdir() if p.stat().st_size < 2000
                 and b'"schemaVersion"' in p.read_bytes()]
    assert len(manifests) >= 3
    for path in manifests:
        assert imagetool("manifest-digest", str(path)).stdout == skopeo("manifest-digest", str(path)).stdout


def test_inspect_errors_are_one_line(images: Path, tmp_path: Path) -> None:
    assert "no image named" in one_line_error(imagetool("inspect", f"oci:{images}:missing", check=False))
    assert "no such OCI layout" in one_line_error(imagetool("inspect", f"oci:{tmp_path}/nowhere", check=False))
    assert "holds 3 images" in one_line_error(imagetool("inspect", f"oci:{images}", check=False))
    schema1 = tmp_path / "s1.json"
    schema1.write_text(json.dumps({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": []}))
    assert "schema 1" in one_line_error(imagetool("manifest-digest", str(schema1), check=False))
    assert "unknown transport" in one_line_error(imagetool("inspect", "nope:/x", check=False))
