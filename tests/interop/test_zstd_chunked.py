"""zstd:chunked layers from `copy`, `push` and `build`: plain zstd to every reader (zstd, skopeo 1.9), the
diff_ids unchanged, the annotations containers/storage reads on each layer; a rewrite drops them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from imagetool.layer import chunked
from tests.lib.cli import imagetool, skopeo
from tests.lib.images import random_image
from tests.lib.registry import Registry

KEYS = (chunked.TOC_CHECKSUM, chunked.TOC_POSITION, chunked.TARSPLIT_POSITION)


def _manifest(ref: str, *flags: str) -> dict:  # type: ignore[type-arg]
    return json.loads(imagetool("inspect", "--raw", *flags, ref).stdout)  # type: ignore[no-any-return]


def _diff_ids(ref: str, *flags: str) -> list[str]:
    return json.loads(imagetool("inspect", "--config", *flags, ref).stdout)["rootfs"]["diff_ids"]  # type: ignore


def test_copy_writes_chunked_layers_that_zstd_and_skopeo_read_as_the_same_tars(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=3, size=300_000)
    src, dst = f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/ch:v1"
    imagetool("copy", "-q", "--dest-compress-format", "zstd:chunked", src, dst)
    m = _manifest(dst)
    diff_ids = _diff_ids(dst)
    assert diff_ids == _diff_ids(src)
    for layer, diff_id in zip(m["layers"], diff_ids, strict=True):
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert all(k in layer["annotations"] for k in KEYS)
        blob = tmp_path / "ch/blobs/sha256" / layer["digest"].split(":")[1]
        tar = subprocess.run(["zstd", "-dc", str(blob)], capture_output=True, check=True).stdout
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
    # skopeo decompresses each layer back to its diff_id
    skopeo("copy", "--dest-decompress", dst, f"dir:{tmp_path}/plain")
    sm = json.loads((tmp_path / "plain/manifest.json").read_text())
    assert [layer["digest"] for layer in sm["layers"]] == diff_ids
    # copying on as zstd:chunked keeps the blobs; as gzip drops the annotations, which would lie
    imagetool("copy", "-q", "--dest-compress-format", "zstd:chunked", dst, f"oci:{tmp_path}/again:v1")
    assert _manifest(f"oci:{tmp_path}/again:v1")["layers"] == m["layers"]
    imagetool("copy", "-q", "--dest-compress-format", "gzip", dst, f"oci:{tmp_path}/gz:v1")
    for layer in _manifest(f"oci:{tmp_path}/gz:v1")["layers"]:
        assert not any(k.startswith(chunked.ANNOTATION_PREFIX) for k in layer.get("annotations", {}))


def test_push_to_a_registry_and_skopeo_pulls_it(tmp_path: Path, plain_registry: Registry) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, size=200_000)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/chunky:v1")
    ref = plain_registry.ref("chunky:v1")
    imagetool("push", "-q", "--tls-verify=false", "--compression-format", "zstd:chunked", "localhost/chunky:v1", ref)
    m = _manifest(ref, "--tls-verify=false")
    assert all(all(k in layer["annotations"] for k in KEYS) for layer in m["layers"])
    skopeo("copy", "--src-tls-verify=false", "--dest-decompress", ref, f"dir:{tmp_path}/plain")
    sm = json.loads((tmp_path / "plain/manifest.json").read_text())
    assert [layer["digest"] for layer in sm["layers"]] == _diff_ids(f"oci:{tmp_path}/src:v1")


def test_build_writes_chunked_layers(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.bin").write_bytes(bytes(range(256)) * 40_000)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\n")
    imagetool("build", "-q", "--compression-format", "zstd:chunked", "-t", "localhost/built:1", str(ctx))
    imagetool("copy", "-q", "localhost/built:1", f"oci:{tmp_path}/out:1")
    layer = _manifest(f"oci:{tmp_path}/out:1")["layers"][0]
    assert all(k in layer["annotations"] for k in KEYS)
    blob = tmp_path / "out/blobs/sha256" / layer["digest"].split(":")[1]
    tar = subprocess.run(["zstd", "-dc", str(blob)], capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == _diff_ids(f"oci:{tmp_path}/out:1")[0]
