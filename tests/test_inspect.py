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


SKOPEO_TEMPLATES = [
    "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}",
    "{{range $i, $l := .Layers}}{{$i}}:{{$l}} {{end}}",
    "{{with .Labels}}{{.test}}{{end}}|{{.Labels.test}}|{{index .Labels \"nokey\"}}|{{.Name}}|",
    "{{printf \"%s/%s\" .Os .Architecture}} {{.Architecture | printf \"%q\"}}",
    "{{printf \"%-8s|%5d|\" .Os (len .Layers)}}",
    "{{if eq .Os \"windows\"}}W{{else if eq .Os \"linux\"}}L{{else}}?{{end}}",
    "{{range .RepoTags}}[{{.}}]{{else}}none{{end}} {{if and .Labels (not .RepoTags)}}x{{end}}",
    "{{$d := .Digest}}{{range .Layers}}{{$d}} {{end}}",
]


@pytest.mark.parametrize("template", SKOPEO_TEMPLATES)
def test_templates_as_skopeo_users_write_them(images: Path, template: str) -> None:
    ref = f"oci:{images}:rand"
    ours = imagetool("inspect", "--format", template, ref).stdout
    assert ours == skopeo("inspect", "--format", template, ref).stdout
    assert "<no value>" not in ours


def test_bad_templates_are_one_line(images: Path) -> None:
    ref = f"oci:{images}:rand"
    for template, expect in [("{{range .Env}}{{.}}", "missing {{end}}"), ("{{end}}", "unexpected {{end}}"),
                             ("{{upper .Os}}", "unsupported template function"), ("{{$nope}}", "undefined")]:
        assert expect in one_line_error(imagetool("inspect", "--format", template, ref, check=False))


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


def test_an_image_without_labels_or_created_prints_like_skopeo(tmp_path: Path) -> None:
    """Go prints a nil map as map[] and a nil time as <nil>; the JSON says null."""
    from imagetool import media
    from imagetool.descriptor import Descriptor
    from imagetool.digest import Digest
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import make_layer

    store = LayoutStore.create(tmp_path / "bare")
    layer = make_layer({"a.txt": b"a"})
    store.put_bytes(layer.blob)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                           "config": {"mediaType": media.OCI_CONFIG, "digest": str(store.put_bytes(config)),
                                      "size": len(config)},
                           "layers": [{"mediaType": layer.media_type, "digest": str(layer.digest),
                                       "size": len(layer.blob)}]}).encode()
    digest = store.put_bytes(manifest)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_MANIFEST, digest, len(manifest)), "v1")])
    ref = f"oci:{tmp_path}/bare:v1"
    ours, theirs = json.loads(imagetool("inspect", ref).stdout), json.loads(skopeo("inspect", ref).stdout)
    assert {k: ours[k] for k in theirs} == theirs and theirs["Created"] is None and theirs["Labels"] is None
    template = "{{.Labels}}|{{.Env}}|{{.Created}}|{{len .Labels}}|{{range .Labels}}x{{end}}|{{index .Labels \"a\"}}|" \
               "{{if .Labels}}L{{else}}none{{end}}|{{.Name}}|{{.RepoTags}}"
    assert imagetool("inspect", "-f", template, ref).stdout == skopeo("inspect", "-f", template, ref).stdout == \
        "map[]|[]|<nil>|0|||none||[]\n"
    assert imagetool("inspect", "-f", "{{json .Labels}} {{json .Env}}", ref).stdout == "null null\n"
    assert str(Digest.of(manifest)) == imagetool("inspect", "-f", "{{.Digest}}", ref).stdout.strip()
