"""The copy pipeline between OCI layouts and the local store, checked with skopeo and umoci."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, UnsupportedManifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.transports import SystemContext, parse_image_name
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.images import random_image, two_platform_index


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
    assert not (tmp_path / "dst").exists()  # a failed copy into a new layout takes it away again


def test_all_keeps_the_index_digest(tmp_path: Path) -> None:
    index = two_platform_index(tmp_path / "src")
    imagetool("copy", "-q", "--all", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:multi")
    raw = imagetool("inspect", "--raw", f"oci:{tmp_path}/dst:multi").stdout.encode()
    assert Digest.of(raw) == index.digest
    skopeo("inspect", "--raw", f"oci:{tmp_path}/dst:multi")


def test_system_copy_picks_the_matching_instance(tmp_path: Path) -> None:
    index = two_platform_index(tmp_path / "src")
    d = _copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:one",
              src_ctx=SystemContext(override_arch="arm64"))
    assert d == index.manifests[1].digest
    proc = imagetool("--override-arch", "s390x", "copy", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/x:y",
                     check=False)
    line = one_line_error(proc)
    assert proc.returncode == 1  # the image is there, just not for this platform: not exit 2
    assert 'no image found in image index for architecture "s390x", variant "", OS "linux"' in line
    assert "linux/amd64" in line and "linux/arm64/v8" in line


def test_index_only_copies_just_the_index(tmp_path: Path) -> None:
    index = two_platform_index(tmp_path / "src")
    _copy(f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:i", multi_arch="index-only")
    dst = LayoutStore.open(tmp_path / "dst")
    assert dst.has_blob(index.digest)
    assert not any(dst.has_blob(m.digest) for m in index.manifests)


def test_oci_layout_holds_only_oci_manifests(tmp_path: Path) -> None:
    """skopeo 1.9 writes a v2s2 entry here that it then cannot read back; we refuse up front."""
    random_image(tmp_path / "src", "v1")
    with pytest.raises(UnsupportedManifest, match="v2s2"):
        _copy(f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", format="v2s2")
    assert not (tmp_path / "dst").exists()


def _sha512_image(path: Path) -> tuple[Digest, Digest]:
    """An OCI layout whose manifest, config and layer are all named by sha512 digests."""
    import gzip

    from tests.lib.images import tar_bytes

    store = LayoutStore.create(path)
    tar = tar_bytes({"hello.txt": b"named by sha512\n"})
    blob = gzip.compress(tar, mtime=0)
    layer = store.put_bytes(blob, Digest.of(blob, "sha512"))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"]},
                         "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(tar))]}}).encode()
    config_digest = store.put_bytes(config, Digest.of(config, "sha512"))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                           "config": {"mediaType": media.OCI_CONFIG, "digest": str(config_digest),
                                      "size": len(config)},
                           "layers": [{"mediaType": media.OCI_LAYER_GZIP, "digest": str(layer),
                                       "size": len(blob)}]}).encode()
    digest = store.put_bytes(manifest, Digest.of(manifest, "sha512"))
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_MANIFEST, digest, len(manifest)), "v1")])
    return layer, config_digest


def test_sha512_blobs_travel_through_every_file_transport(tmp_path: Path, local_store: Path) -> None:
    layer, config = _sha512_image(tmp_path / "src")
    src = f"oci:{tmp_path}/src:v1"
    want = imagetool("inspect", "-f", "{{.Digest}} {{.Layers}}", src).stdout
    assert want.split()[1] == f"[{layer}]"
    for dst in (f"oci:{tmp_path}/o:v1", f"oci-archive:{tmp_path}/oa.tar:v1", f"dir:{tmp_path}/d", "localhost/s512:1"):
        imagetool("copy", "-q", src, dst)
        assert imagetool("inspect", "-f", "{{.Digest}} {{.Layers}}", dst).stdout == want, dst
        assert json.loads(imagetool("inspect", "--raw", dst).stdout)["config"]["digest"] == str(config)
    assert (tmp_path / "o" / "blobs" / "sha512" / layer.hex).is_file()
    assert (local_store / "blobs" / "sha512" / config.hex).is_file()
    # a docker archive names the config by its hex: 128 digits need a long-name tar header
    imagetool("copy", "-q", src, f"docker-archive:{tmp_path}/da.tar:x/y:1")
    assert json.loads(imagetool("inspect", "--config", f"docker-archive:{tmp_path}/da.tar").stdout)["config"] == \
        {"Env": ["A=1"]}
    skopeo("inspect", "--config", f"docker-archive:{tmp_path}/da.tar")
    # recompression keeps the sha512 config and hashes new layers with sha256
    imagetool("copy", "-q", "--dest-compress-format", "zstd", src, f"oci:{tmp_path}/z:v1")
    z = json.loads(imagetool("inspect", "--raw", f"oci:{tmp_path}/z:v1").stdout)
    assert z["config"]["digest"] == str(config) and z["layers"][0]["digest"].startswith("sha256:")
    # a sha512 blob that does not match fails naming its digest
    path = tmp_path / "src" / "blobs" / "sha512" / layer.hex
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert str(layer) in one_line_error(imagetool("copy", src, f"oci:{tmp_path}/bad:v1", check=False))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "dir", "local", "docker-archive"])
def test_multi_arch_modes_into_each_transport(tmp_path: Path, local_store: Path, kind: str) -> None:
    index = two_platform_index(tmp_path / "src")
    src = f"oci:{tmp_path}/src:multi"
    dests = {"oci": f"oci:{tmp_path}/%s:x", "oci-archive": f"oci-archive:{tmp_path}/%s.tar:x",
             "dir": f"dir:{tmp_path}/%s", "local": "localhost/%s:1",
             "docker-archive": f"docker-archive:{tmp_path}/%s.tar"}
    # system: the host's instance, the same bytes as in the source
    dst = dests[kind] % "system"
    imagetool("--override-arch", "arm64", "copy", "-q", "--digestfile", f"{tmp_path}/d", src, dst)
    if kind == "docker-archive":  # what was written (layers uncompressed), as skopeo's --digestfile says
        skopeo("--override-arch", "arm64", "copy", "-q", "--digestfile", f"{tmp_path}/sk", src,
               f"docker-archive:{tmp_path}/sk.tar")
        assert (tmp_path / "d").read_text() == (tmp_path / "sk").read_text()
    else:
        assert (tmp_path / "d").read_text() == str(index.manifests[1].digest)
        assert Digest.of(imagetool("inspect", "--raw", dst).stdout.encode()) == index.manifests[1].digest
    for mode, flag in (("all", "--all"), ("index-only", "--multi-arch=index-only")):
        dst = dests[kind] % mode
        proc = imagetool("copy", "-q", flag, src, dst, check=False)
        if kind == "docker-archive":
            assert "cannot store multi-image indexes" in one_line_error(proc)
            assert not (tmp_path / f"{mode}.tar").exists()
            continue
        assert proc.returncode == 0, proc.stderr
        raw = imagetool("inspect", "--raw", dst).stdout.encode()
        assert Digest.of(raw) == index.digest
        if kind != "local":
            assert skopeo("inspect", "--raw", dst).stdout.encode() == raw
        fmt = "{{.Digest}} {{.Layers}}"
        arm = imagetool("--override-arch", "arm64", "inspect", "-f", fmt, dst, check=False)
        if mode == "all":  # the index's digest, the layers of the instance for the platform asked
            want = imagetool("--override-arch", "arm64", "inspect", "-f", fmt, src).stdout
            assert arm.stdout == want != imagetool("inspect", "-f", fmt, dst).stdout
            if kind != "local":
                assert skopeo("--override-arch", "arm64", "inspect", "-f", fmt, dst).stdout == want
        elif kind != "local":  # (the local store already holds them from the copies above)
            assert arm.returncode != 0  # the instances were not copied


def test_v2s2_conversion_into_dir_is_read_back_by_skopeo(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2)
    imagetool("copy", "-q", "--format", "v2s2", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/v2")
    skopeo("copy", "-q", "--format", "v2s2", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/sk")
    raw = (tmp_path / "v2" / "manifest.json").read_bytes()
    assert raw == (tmp_path / "sk" / "manifest.json").read_bytes()
    doc = json.loads(raw)
    assert doc["mediaType"] == media.DOCKER_MANIFEST and doc["config"]["mediaType"] == media.DOCKER_CONFIG
    assert {layer["mediaType"] for layer in doc["layers"]} == {media.DOCKER_LAYER_GZIP}
    theirs = json.loads(skopeo("inspect", f"dir:{tmp_path}/v2").stdout)
    assert theirs["Digest"] == str(Digest.of(raw))
    assert theirs["Layers"] == json.loads(imagetool("inspect", f"oci:{tmp_path}/src:v1").stdout)["Layers"]
    # and back to OCI: the original manifest, byte for byte
    imagetool("copy", "-q", "--format", "oci", f"dir:{tmp_path}/v2", f"oci:{tmp_path}/back:v1")
    assert imagetool("inspect", "-f", "{{.Digest}}", f"oci:{tmp_path}/back:v1").stdout.strip() == str(desc.digest)


def test_corrupt_blob_into_the_local_store_adds_no_name(tmp_path: Path, local_store: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, size=100_000)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/keep:1")
    store = LayoutStore.open(tmp_path / "src")
    layer = Digest.parse(json.loads(store.read_blob(desc.digest))["layers"][0]["digest"])
    random_image(tmp_path / "src", "v2", n_layers=1, size=100_000, seed=11)
    bad = Digest.parse(json.loads(store.read_blob(refs.resolve(store, "v2").digest))["layers"][0]["digest"])
    assert bad != layer
    data = bytearray(store.blob_path(bad).read_bytes())
    data[100] ^= 0xFF
    store.blob_path(bad).write_bytes(bytes(data))
    before = (local_store / "index.json").read_bytes()
    assert str(bad) in one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v2", "localhost/new:1", check=False))
    assert (local_store / "index.json").read_bytes() == before
    assert not LayoutStore.open(local_store).has_blob(bad)


def test_all_with_v2s2_writes_skopeos_manifest_list_and_digestfile(tmp_path: Path) -> None:
    two_platform_index(tmp_path / "src")
    src = f"oci:{tmp_path}/src:multi"
    imagetool("copy", "-q", "--all", "--format", "v2s2", "--digestfile", f"{tmp_path}/ours", src, f"dir:{tmp_path}/o")
    skopeo("copy", "-q", "--all", "--format", "v2s2", "--digestfile", f"{tmp_path}/theirs", src, f"dir:{tmp_path}/t")
    assert (tmp_path / "ours").read_text() == (tmp_path / "theirs").read_text()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(p.name for p in (tmp_path / "t").iterdir())
    for path in (tmp_path / "o").glob("*manifest.json"):
        assert path.read_bytes() == (tmp_path / "t" / path.name).read_bytes(), path.name
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["mediaType"] == media.DOCKER_MANIFEST_LIST


def test_zstd_layers_to_v2s2_refused_before_writing_or_recompressed(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, compression="zstd")
    src = f"oci:{tmp_path}/src:v1"
    line = one_line_error(imagetool("copy", "--format", "v2s2", src, f"dir:{tmp_path}/v2", check=False))
    assert "zstd" in line and "--dest-compress-format gzip" in line
    assert not (tmp_path / "v2").exists()
    assert skopeo("copy", "--format", "v2s2", src, f"dir:{tmp_path}/sk", check=False).returncode != 0  # as skopeo
    imagetool("copy", "-q", "--format", "v2s2", "--dest-compress-format", "gzip", src, f"dir:{tmp_path}/v2")
    layers = json.loads(skopeo("inspect", "--raw", f"dir:{tmp_path}/v2").stdout)["layers"]
    assert [layer["mediaType"] for layer in layers] == [media.DOCKER_LAYER_GZIP]


def _layout_with_diff_id(path: Path, diff_id: Digest | None) -> bytes:
    """An OCI layout of one gzip layer whose config names `diff_id` (None: the layer's true one); returns the tar."""
    import gzip

    from tests.lib.images import tar_bytes

    store = LayoutStore.create(path)
    tar = tar_bytes({"hello.txt": b"a layer\n" * 1000})
    blob = gzip.compress(tar, mtime=0)
    layer = store.put_bytes(blob)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [str(diff_id or Digest.of(tar))]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                           "config": {"mediaType": media.OCI_CONFIG, "digest": str(store.put_bytes(config)),
                                      "size": len(config)},
                           "layers": [{"mediaType": media.OCI_LAYER_GZIP, "digest": str(layer),
                                       "size": len(blob)}]}).encode()
    digest = store.put_bytes(manifest)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_MANIFEST, digest, len(manifest)), "v1")])
    return tar


def test_decompressed_layer_is_checked_against_the_config_diff_id(tmp_path: Path) -> None:
    """Decompressing, the destination's own digest of the tar is the diff_id: hashed once, and still checked."""
    tar = _layout_with_diff_id(tmp_path / "good", None)
    imagetool("copy", "-q", f"oci:{tmp_path}/good:v1", f"docker-archive:{tmp_path}/good.tar:a/b:1")
    out = imagetool("inspect", "-f", "{{.Layers}}", f"docker-archive:{tmp_path}/good.tar").stdout
    assert out.strip() == f"[{Digest.of(tar)}]"
    _layout_with_diff_id(tmp_path / "bad", Digest.of(b"another layer"))
    with pytest.raises(DigestMismatch):
        _copy(f"oci:{tmp_path}/bad:v1", f"docker-archive:{tmp_path}/bad.tar:a/b:1")


def test_recompressed_layer_keeps_the_config_diff_id_which_unpacking_checks(tmp_path: Path) -> None:
    """Recompressing, the uncompressed stream is not hashed a third time: the config's diff_id travels as it
    is (skopeo does the same), and the snapshot store, keyed by diff_ids, refuses a layer that does not match."""
    from imagetool.errors import LayerError
    from imagetool.manifest import ImageConfig, parse_manifest
    from imagetool.store.snapshots import SnapshotStore

    wrong = Digest.of(b"another layer")
    _layout_with_diff_id(tmp_path / "bad", wrong)
    skopeo("copy", "--dest-compress-format", "zstd", f"oci:{tmp_path}/bad:v1", f"oci:{tmp_path}/sk:v1")
    _copy(f"oci:{tmp_path}/bad:v1", f"oci:{tmp_path}/z:v1", compression="zstd")
    store = LayoutStore.open(tmp_path / "z")
    manifest = parse_manifest(store.read_blob(refs.resolve(store, "v1").digest))
    assert manifest.layers[0].media_type == media.OCI_LAYER_ZSTD
    assert ImageConfig.parse(store.read_blob(manifest.config.digest)).diff_ids == [wrong]
    with pytest.raises(LayerError, match="diff_id"):
        SnapshotStore(store).prepare([(manifest.layers[0], wrong)])
