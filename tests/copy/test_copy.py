"""The copy pipeline between OCI layouts and the local store, checked with skopeo and umoci."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.descriptor import Descriptor, Platform
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, UnsupportedManifest
from imagetool.manifest import Index
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.transports import SystemContext, parse_image_name
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.images import random_image


def _copy(src: str, dst: str, **kw: object) -> Digest:
    return copy_image(parse_image_name(src), parse_image_name(dst), CopyOptions(**kw)).digest  # type: ignore


def test_oci_to_oci_keeps_digest_and_bytes(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=3, size=200_000)
    out = imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v2", "--digestfile", f"{tmp_path}/d")
    assert (tmp_path / "d").read_text() == str(desc.digest)
    assert "Copying blob" in out.stdout and "Writing manifest" in out.stdout
    dst = LayoutStore.open(tmp_path / "dst")
    assert refs.resolve(dst, "v2").digest == desc.digest
    for blob in LayoutStore.open(tmp_path / "src").iter_blobs():
        assert (dst.blob_path(blob)).read_bytes() == LayoutStore.open(tmp_path / "src").blob_path(blob).read_bytes()


def test_second_copy_skips_existing_blobs(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, size=50_000)
    imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:a")
    out = imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:b")
    assert out.stdout.count("skipped: already exists") == 3  # two layers and the config


def test_local_store_by_bare_name_keeps_docker_format(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", oci=False)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")  # oci: source holding v2s2
    got = json.loads(imagetool("inspect", "--raw", "localhost/app:1").stdout)
    assert got["mediaType"] == media.DOCKER_MANIFEST
    assert "not found" in one_line_error(imagetool("inspect", "localhost/app", check=False))  # :latest
    assert imagetool("inspect", "-f", "{{.Digest}}", "localhost/app:1").stdout.strip() == str(desc.digest)


def test_format_conversion_matches_skopeo_byte_for_byte(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    skopeo("copy", "--format", "v2s2", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/sk")
    ours = _copy(f"oci:{tmp_path}/src:v1", "localhost/conv:1", format="v2s2")
    theirs = skopeo("manifest-digest", f"{tmp_path}/sk/manifest.json").stdout.strip()
    assert str(ours) == theirs


def test_zstd_recompression_is_read_back_by_skopeo_and_unpacks_with_umoci(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=300_000)
    imagetool("copy", "-q", "--dest-compress-format", "zstd", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/z:v1")
    manifest = json.loads(imagetool("inspect", "--raw", f"oci:{tmp_path}/z:v1").stdout)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {media.OCI_LAYER_ZSTD}
    skopeo("copy", "--dest-compress-format", "gzip", f"oci:{tmp_path}/z:v1", f"oci:{tmp_path}/g:v1")
    tool(["umoci", "unpack", "--rootless", "--image", f"{tmp_path}/g:v1", str(tmp_path / "bundle")])
    files = sorted(p.name for p in (tmp_path / "bundle" / "rootfs" / "data").iterdir())
    assert files == ["file-100.bin", "file-101.bin"]
    # the uncompressed content is unchanged: same diff_ids as the source
    src_cfg = json.loads(imagetool("inspect", "--config", f"oci:{tmp_path}/src:v1").stdout)
    z_cfg = json.loads(imagetool("inspect", "--config", f"oci:{tmp_path}/z:v1").stdout)
    assert src_cfg["rootfs"] == z_cfg["rootfs"]
    assert manifest["config"]["digest"] == json.loads(
        imagetool("inspect", "--raw", f"oci:{tmp_path}/src:v1").stdout)["config"]["digest"]
    assert desc.digest != Digest.of(imagetool("inspect", "--raw", f"oci:{tmp_path}/z:v1").stdout.encode())


def test_uncompressed_layers_are_compressed_for_oci(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", compression=None)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/c:v1")
    layers = json.loads(imagetool("inspect", "--raw", f"oci:{tmp_path}/c:v1").stdout)["layers"]
    assert {layer["mediaType"] for layer in layers} == {media.OCI_LAYER_GZIP}
    tool(["umoci", "unpack", "--rootless", "--image", f"{tmp_path}/c:v1", str(tmp_path / "b")])


def test_preserve_digests_refuses_a_conversion(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    proc = imagetool("copy", "--preserve-digests", "--dest-compress-format", "zstd", f"oci:{tmp_path}/src:v1",
                     f"oci:{tmp_path}/dst:v1", check=False)
    assert "preserve digests" in one_line_error(proc)
    assert not (tmp_path / "dst" / "index.json").exists() or \
        not LayoutStore.open(tmp_path / "dst").index().manifests


def test_corrupt_blob_fails_naming_digest_and_tags_nothing(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=100_000)
    store = LayoutStore.open(tmp_path / "src")
    manifest = json.loads(store.read_blob(desc.digest))
    bad = Digest.parse(manifest["layers"][1]["digest"])
    path = store.blob_path(bad)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    random_image(tmp_path / "dst", "existing", seed=7)
    before = (tmp_path / "dst" / "index.json").read_bytes()
    proc = imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:new", check=False)
    assert str(bad) in one_line_error(proc)
    assert (tmp_path / "dst" / "index.json").read_bytes() == before
    assert not LayoutStore.open(tmp_path / "dst").has_blob(bad)


def test_recompression_still_verifies_source(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, size=100_000, compression=None)
    store = LayoutStore.open(tmp_path / "src")
    layer = Digest.parse(json.loads(store.read_blob(desc.digest))["layers"][0]["digest"])
    data = bytearray(store.blob_path(layer).read_bytes())
    data[-1000] ^= 1
    store.blob_path(layer).write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        _copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", compression="gzip")
    assert not LayoutStore.open(tmp_path / "dst").index().manifests


def _two_platform_index(path: Path) -> Index:
    a = random_image(path, None, seed=1, n_layers=1)
    b = random_image(path, None, seed=2, n_layers=1)
    store = LayoutStore.open(path)
    entries = [a.with_(platform=Platform("amd64", "linux"), annotations={}),
               b.with_(platform=Platform("arm64", "linux", "v8"), annotations={})]
    index = Index.build(media.OCI_INDEX, entries)
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "multi")])
    return index


def test_all_keeps_the_index_digest(tmp_path: Path) -> None:
    index = _two_platform_index(tmp_path / "src")
    imagetool("copy", "-q", "--all", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:multi")
    raw = imagetool("inspect", "--raw", f"oci:{tmp_path}/dst:multi").stdout.encode()
    assert Digest.of(raw) == index.digest
    skopeo("inspect", "--raw", f"oci:{tmp_path}/dst:multi")


def test_system_copy_picks_the_matching_instance(tmp_path: Path) -> None:
    index = _two_platform_index(tmp_path / "src")
    d = _copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:one",
              src_ctx=SystemContext(override_arch="arm64"))
    assert d == index.manifests[1].digest
    proc = imagetool("--override-arch", "s390x", "copy", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/x:y",
                     check=False)
    assert "no image for linux/s390x" in one_line_error(proc)


def test_index_only_copies_just_the_index(tmp_path: Path) -> None:
    index = _two_platform_index(tmp_path / "src")
    _copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:i", multi_arch="index-only")
    dst = LayoutStore.open(tmp_path / "dst")
    assert dst.has_blob(index.digest)
    assert not any(dst.has_blob(m.digest) for m in index.manifests)


def test_oci_layout_holds_only_oci_manifests(tmp_path: Path) -> None:
    """skopeo 1.9 writes a v2s2 entry here that it then cannot read back; we refuse up front."""
    random_image(tmp_path / "src", "v1")
    with pytest.raises(UnsupportedManifest, match="v2s2"):
        _copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", format="v2s2")
    assert not LayoutStore.open(tmp_path / "dst").index().manifests
