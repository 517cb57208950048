"""Faults injected by a proxy in front of the real registry: copies retry and complete, or fail cleanly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.cli import imagetool, one_line_error
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")
FAST = ["--retry-times", "4", "--retry-delay", "0.05"]


@pytest.fixture
def proxy(plain_registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(plain_registry.host)
    yield p
    p.close()


def _pulled(path: Path, name: str) -> str:
    return str(refs.resolve(LayoutStore.open(path), name).digest)


def _layer_digests(layout: Path, name: str) -> list[str]:
    from imagetool.manifest import parse_manifest

    store = LayoutStore.open(layout)
    desc = refs.resolve(store, name)
    with store.open_blob(desc.digest) as f:
        manifest = parse_manifest(f.read(), desc.media_type)
    return [str(layer.digest) for layer in manifest.layers]


def _blob_digests(layout: Path, name: str) -> list[str]:
    """The config's digest, then the layers'."""
    from imagetool.manifest import parse_manifest

    store = LayoutStore.open(layout)
    desc = refs.resolve(store, name)
    with store.open_blob(desc.digest) as f:
        manifest = parse_manifest(f.read(), desc.media_type)
    return [str(manifest.config.digest), *(str(layer.digest) for layer in manifest.layers)]


def _head_blob(registry: Registry, repo: str, digest: str) -> int:
    return registry.session().head(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=30).status_code


def test_connection_reset_mid_blob_resumes_with_range(proxy: FaultProxy, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=1_500_000, seed=71)
    layers = _layer_digests(tmp_path / "src", "v1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("faults/reset:v1"))
    proxy.clear()
    rules = [proxy.add("GET", f"/blobs/{d}$", reset_after=400_000, times=1) for d in layers]
    imagetool("copy", "-q", *FAST, "--src-tls-verify=false", proxy.ref("faults/reset:v1"), f"oci:{tmp_path}/dst:v1")
    assert [r.hits for r in rules] == [1, 1]
    assert _pulled(tmp_path / "dst", "v1") == str(desc.digest)
    for digest in layers:
        gets = [r for r in proxy.records if r.method == "GET" and r.path.endswith(digest)]
        # the first answer broke after 400 kB; the second asked only for the rest, and got a 206
        assert [g.fault for g in gets] == ["reset_after", ""]
        assert gets[0].range == ""
        start = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= 400_000 and gets[1].status == 206


def test_503_bursts_during_a_streamed_push_are_retried(proxy: FaultProxy, plain_registry: Registry,
                                                       tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, size=12_000_000, seed=72, compression=None)
    proxy.add("PATCH", r"/blobs/uploads/", status=503, times=3)
    proxy.add("HEAD", r"/blobs/", status=503, times=2)
    proxy.add("PUT", r"/manifests/", status=502, times=1)
    imagetool("copy", "-q", *FAST, "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("faults/b503:v1"))
    patches = [r for r in proxy.records if r.method == "PATCH"]
    # a 12 MB layer streams in one PATCH; each 503 (the registry got none of it) costs the whole layer again,
    # read again from the layout's file
    assert [r.status for r in patches] == [503, 503, 503, 202]
    assert len({r.body_bytes for r in patches}) == 1 and patches[0].body_bytes > 12_000_000
    assert sum(1 for r in proxy.records if r.status in (502, 503)) == 6
    r = plain_registry.raw_get("/v2/faults/b503/manifests/v1")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == str(desc.digest)


def test_429_retry_after_is_honoured(proxy: FaultProxy, plain_registry: Registry, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, seed=73)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", plain_registry.ref("faults/t429:v1"))
    proxy.add("GET", r"/manifests/", status=429, headers={"Retry-After": "1"}, times=1)
    start = time.monotonic()
    imagetool("copy", "-q", "--retry-times", "2", "--src-tls-verify=false", proxy.ref("faults/t429:v1"),
              f"oci:{tmp_path}/dst:v1")
    assert time.monotonic() - start >= 1.0
    assert [r.status for r in proxy.records if "/manifests/" in r.path][:2] == [429, 200]
    assert _pulled(tmp_path / "dst", "v1") == str(desc.digest)


def test_unrecoverable_upload_fault_leaves_no_manifest(proxy: FaultProxy, plain_registry: Registry,
                                                     tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=2_000_000, seed=74)
    proxy.add("PATCH", r"/blobs/uploads/", reset_request=True, times=1000)
    proxy.add("PUT", r"/blobs/uploads/", reset_request=True, times=1000)
    proc = imagetool("copy", "-q", *FAST, "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
                     proxy.ref("faults/broken:v1"), check=False)
    line = one_line_error(proc)
    assert "faults/broken" in line or proxy.host in line
    assert plain_registry.raw_get("/v2/faults/broken/manifests/v1").status_code == 404
    assert plain_registry.raw_get(f"/v2/faults/broken/manifests/{desc.digest}").status_code == 404
    # nothing was published under a layer's (or the config's) digest either
    blobs = _blob_digests(tmp_path / "src", "v1")
    assert [_head_blob(plain_registry, "faults/broken", d) for d in blobs] == [404] * len(blobs)
    tags = plain_registry.raw_get("/v2/faults/broken/tags/list")
    assert tags.status_code == 404 or not (tags.json().get("tags") or [])
    # the same HEADs find the blobs of a copy that went through (so the 404s above mean something)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", plain_registry.ref("faults/whole:v1"))
    assert [_head_blob(plain_registry, "faults/whole", d) for d in blobs] == [200] * len(blobs)


def test_a_server_that_keeps_failing_gives_up_with_one_line(proxy: FaultProxy, tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=75)
    proxy.add(None, None, status=503, times=1000)
    start = time.monotonic()
    line = one_line_error(imagetool("copy", "-q", "--retry-times", "2", "--retry-delay", "0.05",
                                    "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
                                    proxy.ref("faults/down:v1"), check=False))
    assert "503" in line
    assert time.monotonic() - start < 30
