from __future__ import annotations

import json

import pytest

from imagetool import gojson, media
from imagetool.descriptor import Descriptor, Platform
from imagetool.digest import Digest
from imagetool.errors import ManifestError, UnsupportedManifest
from imagetool.manifest import Index, Manifest, parse

D1 = Digest.of(b"config")
L1 = Digest.of(b"layer")


def _oci() -> Manifest:
    return Manifest.build(media.OCI_MANIFEST, Descriptor(media.OCI_CONFIG, D1, 6),
                          [Descriptor(media.OCI_LAYER_GZIP, L1, 5, {"a": "b"})], {"org.example": "x"})


def test_parse_keeps_raw_bytes_and_digest() -> None:
    raw = b'{ "schemaVersion": 2, "mediaType": "%s", "config": {"mediaType": "%s", "digest": "%s", "size": 6},' \
          b' "layers": [] }' % (media.OCI_MANIFEST.encode(), media.OCI_CONFIG.encode(), str(D1).encode())
    m = parse(raw)
    assert isinstance(m, Manifest)
    assert m.raw == raw and m.digest == Digest.of(raw)


def test_conversion_round_trip() -> None:
    oci = _oci()
    docker = oci.convert(to_oci=False)
    doc = json.loads(docker.raw)
    assert doc["mediaType"] == media.DOCKER_MANIFEST
    assert doc["config"]["mediaType"] == media.DOCKER_CONFIG
    assert doc["layers"][0] == {"mediaType": media.DOCKER_LAYER_GZIP, "size": 5, "digest": str(L1)}
    back = docker.convert(to_oci=True)
    assert back.layers[0].media_type == media.OCI_LAYER_GZIP
    assert list(json.loads(back.raw)) == ["schemaVersion", "mediaType", "config", "layers"]


def test_zstd_layers_have_no_docker_form() -> None:
    oci = _oci()
    zstd = oci.with_layers([oci.layers[0].with_(media_type=media.OCI_LAYER_ZSTD)])
    with pytest.raises(UnsupportedManifest, match="zstd"):
        zstd.convert(to_oci=False)


def test_go_field_order_and_escaping() -> None:
    assert gojson.dumps({"a": "<&>"}) == b'{"a":"\\u003c\\u0026\\u003e"}'
    raw = _oci().raw.decode()
    assert raw.index('"mediaType"') < raw.index('"digest"') < raw.index('"size"')


def test_schema1_refused_clearly() -> None:
    raw = json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "signatures": []}).encode()
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse(raw)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"schemaVersion": 2, "mediaType": "text/weird"}',
                                 b'{"schemaVersion": 3, "manifests": []}',
                                 b'{"schemaVersion": 2, "mediaType": "%s", "config": {"digest": "sha256:1",'
                                 b' "size": 1}, "layers": []}' % media.OCI_MANIFEST.encode()])
def test_malformed_manifests(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        parse(raw)


@pytest.mark.parametrize("path,value", [(("annotations",), [1]), (("annotations",), {"k": 1}),
                                        (("layers", 0, "annotations"), "text"), (("layers", 0, "urls"), 7),
                                        (("config", "urls"), ["ok", 3])])
def test_mistyped_annotations_and_urls_are_manifest_errors(path: tuple, value: object) -> None:
    doc = json.loads(_oci().raw)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ManifestError, match="annotations|urls"):
        parse(json.dumps(doc).encode())


def test_index_with_platforms() -> None:
    entries = [Descriptor(media.OCI_MANIFEST, D1, 10, platform=Platform("arm64", "linux", "v8")),
               Descriptor(media.OCI_MANIFEST, L1, 11, platform=Platform("amd64", "linux"))]
    idx = Index.build(media.OCI_INDEX, entries)
    parsed = parse(idx.raw)
    assert isinstance(parsed, Index)
    assert parsed.manifests[0].platform == Platform("arm64", "linux", "v8")
    docker = idx.convert(to_oci=False)
    assert json.loads(docker.raw)["manifests"][0]["mediaType"] == media.DOCKER_MANIFEST
