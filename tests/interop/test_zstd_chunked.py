"""zstd:chunked layers from `copy`, `push` and `build`: plain zstd to every reader (zstd, skopeo 1.9), the
diff_ids unchanged, the annotations containers/storage reads on each layer; a rewrite drops them."""

from __future__ import annotations

import hashlib
import os
import json
import subprocess
from pathlib import Path

from imagetool.layer import chunked
from tests.lib.cli import imagetool, skopeo
from tests.lib.images import random_image
from tests.lib.registry import Registry

KEYS = (chunked.TOC_CHECKSUM, chunked.TOC_POSITION, chunked.TARSPLIT_POSITION, chunked.LEGACY_TOC_CHECKSUM,
        chunked.LEGACY_TOC_POSITION)


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
        assert not any(k.startswith(chunked.ANNOTATION_PREFIXES) for k in layer.get("annotations", {}))


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


def test_skopeo_pulls_our_layers_partially_into_containers_storage(tmp_path: Path, plain_registry: Registry) -> None:
    """skopeo 1.9's containers/storage (v1.43, the one in Debian 12's podman 4.3 too) with
    enable_partial_images reads our TOC: v2 with v1 in its store fetches only the changed file."""
    from tests.copy.test_partial_pull import FILE, _full_unpack, _image, _listing, files
    from tests.lib.faultproxy import FaultProxy
    from tests.lib.images import tar_bytes

    proxy = FaultProxy(plain_registry.host)
    graph, run = tmp_path / "graph", tmp_path / "run"
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{graph}"\nrunroot = "{run}"\n'
                    '[storage.options]\npull_options = {enable_partial_images = "true"}\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    try:
        tars = {v: tar_bytes(files(v), mtime=1_700_000_000) for v in (1, 2)}
        layers = {}
        for v, tar in tars.items():
            layout = _image(tmp_path, f"v{v}", tar)
            ref = f"{proxy.ref('app')}:v{v}"
            imagetool("copy", "-q", "--dest-tls-verify=false", "--dest-compress-format", "zstd:chunked",
                      f"oci:{layout}:v", ref)
            layers[v] = _manifest(ref, "--tls-verify=false")["layers"][0]
        for v in (1, 2):
            proxy.records.clear()
            dest = f"containers-storage:[overlay@{graph}+{run}]localhost/app:v{v}"
            subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                            f"{proxy.ref('app')}:v{v}", dest], env=env, check=True, capture_output=True)
        gets = [r for r in proxy.records if r.method == "GET" and r.path.endswith(layers[2]["digest"])]
        assert gets and all(r.status == 206 and r.range for r in gets)
        sent = sum(r.sent for r in gets)
        assert sent < FILE + 64 << 10, sent  # the changed file and the TOC
        # the layer it made holds what a full unpack does
        full = _full_unpack(tars[2], tmp_path / "full")
        diffs = [d for d in (graph / "overlay").glob("*/diff") if (d / "app/f4.bin").is_file()
                 and hashlib.sha256((d / "app/f4.bin").read_bytes()).hexdigest() == full["app/f4.bin"][2]]
        assert len(diffs) == 1
        got = _listing(diffs[0])
        def same(listing: dict) -> dict:  # type: ignore[type-arg]
            # containers/storage v1.43 leaves the times of directories, and of files it copies from
            # another layer, at the time of the pull: content, modes and links are compared
            return {k: v[:2] if v[0] == "d" else v[:3] for k, v in listing.items()}
        assert same(got) == same(full)
    finally:
        proxy.close()
        subprocess.run(["umount", str(graph / "overlay")], capture_output=True)
