"""Requests a push makes, counted at a proxy in front of the real registry: a small blob's check opens its upload,
a large blob streams in one PATCH (or, from a stream that cannot be read again, in chunks whose last rides on the
closing PUT), a sync's images share tokens and one blob-location save."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.registry import locations
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.upload import CHUNK_SIZE, BlobUploader
from tests.lib.cli import imagetool
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


@pytest.fixture
def proxy(plain_registry: Registry) -> FaultProxy:
    p = FaultProxy(plain_registry.host)
    yield p  # type: ignore[misc]
    p.close()


def _calls(proxy: FaultProxy) -> list[tuple[str, str]]:
    """(method, what) per request: blob check/upload kinds as the registry API names them."""
    out = []
    for r in proxy.records:
        path = r.path.split("?")[0]
        kind = "mount" if "mount=" in r.path else \
            "uploads" if "/blobs/uploads/" in path else path.rstrip("/").split("/")[-2]
        out.append((r.method, kind))
    return out


def test_a_small_blob_is_checked_for_and_uploaded_in_two_requests(proxy: FaultProxy, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2, size=20_000, seed=71)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("trips/small:v1"))
    calls = _calls(proxy)
    # two layers and the config: each a POST ?mount= from its own repository (202: absent, upload opened) + PUT
    assert calls.count(("POST", "mount")) == 3
    assert calls.count(("PUT", "uploads")) == 3
    assert ("HEAD", "blobs") not in calls and ("PATCH", "uploads") not in calls
    assert not any(m == "POST" and k == "uploads" for m, k in calls)  # no second session was started
    assert [r.status for r in proxy.records if "mount=" in r.path] == [202] * 3
    # the copy reads back whole: every blob was stored under its digest
    imagetool("copy", "-q", "--src-tls-verify=false", proxy.ref("trips/small:v1"), f"oci:{tmp_path}/back:v1")
    # a copy that knows nothing (no blob-location cache) of what the repository has: the same POST answers
    # "already there" (201), nothing is uploaded, and no session is left open
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cold-cache"))
    proxy.clear()
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("trips/small:v1"))
    assert [r.status for r in proxy.records if "mount=" in r.path] == [201] * 3
    assert proxy.uploaded_bytes() == 0
    assert not any(r.method in ("PATCH", "DELETE") or (r.method == "PUT" and "/uploads/" in r.path)
                   for r in proxy.records)


def _client(reg: FaultProxy) -> Client:
    return Client(reg.host, ClientOptions(tls_verify=False, retry_delay=0.01))


class _Once:
    """A stream that can be read only once (as a compressor's pipe): it goes up in chunks, not streamed."""

    def __init__(self, data: bytes) -> None:
        self._raw = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)


def test_a_large_blob_streams_in_one_patch(proxy: FaultProxy, plain_registry: Registry, tmp_path: Path) -> None:
    data = bytes(range(256)) * ((2 * CHUNK_SIZE + (1 << 20)) // 256)
    digest = Digest.of(data)
    (tmp_path / "blob").write_bytes(data)
    with open(tmp_path / "blob", "rb") as f:
        assert BlobUploader(_client(proxy), "trips/streamed").upload(f, digest, len(data)) == (digest, len(data))
    calls = [(r.method, r.body_bytes) for r in proxy.records if "/blobs/uploads/" in r.path]
    assert calls == [("POST", 0), ("PATCH", len(data)), ("PUT", 0)]
    got = plain_registry.raw_get(f"/v2/trips/streamed/blobs/{digest}")
    assert got.status_code == 200 and got.content == data


def test_the_last_chunk_of_a_large_blob_goes_with_the_closing_put(proxy: FaultProxy,
                                                                  plain_registry: Registry) -> None:
    data = bytes(range(256)) * ((CHUNK_SIZE + (1 << 20)) // 256)  # one whole chunk and a quarter
    digest = Digest.of(data)
    assert BlobUploader(_client(proxy), "trips/large").upload(_Once(data), digest, len(data)) == \
        (digest, len(data))
    calls = [(r.method, r.body_bytes) for r in proxy.records if "/blobs/uploads/" in r.path]
    assert calls == [("POST", 0), ("PATCH", CHUNK_SIZE), ("PUT", len(data) - CHUNK_SIZE)]
    got = plain_registry.raw_get(f"/v2/trips/large/blobs/{digest}")
    assert got.status_code == 200 and got.content == data


def test_a_closing_put_cut_off_resumes_from_what_the_registry_holds(proxy: FaultProxy,
                                                                    plain_registry: Registry) -> None:
    data = b"".join(bytes([i]) * 4096 for i in range(256)) * 5  # 5 MiB: a chunk, then 1 MiB with the PUT
    digest = Digest.of(data)
    proxy.add("PUT", r"/blobs/uploads/", reset_request=True)
    assert BlobUploader(_client(proxy), "trips/resume").upload(_Once(data), digest, len(data)) == \
        (digest, len(data))
    methods = [r.method for r in proxy.records if "/blobs/uploads/" in r.path]
    # the PUT carrying the last chunk never arrived: its status, the rest in a PATCH, an empty PUT
    assert methods == ["POST", "PATCH", "PUT", "GET", "PATCH", "PUT"]
    got = plain_registry.raw_get(f"/v2/trips/resume/blobs/{digest}")
    assert got.status_code == 200 and Digest.of(got.content) == digest


def test_a_sync_asks_for_a_token_once_per_scope_set(token_registry: Registry, plain_registry: Registry,
                                                    tmp_path: Path) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    count = 6
    for i in range(count):
        random_image(tmp_path / f"l{i}", f"t{i}", n_layers=1, size=2_000, seed=300 + i)
        imagetool("copy", "-q", "--dest-tls-verify=false", *token_registry.creds_flags("dest-"),
                  f"oci:{tmp_path}/l{i}:t{i}", token_registry.ref(f"tokens/app:t{i}"))
    before = len(issuer.requests)
    imagetool("sync", "-q", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
              "--dest-tls-verify=false", *token_registry.creds_flags("src-"), f"{token_registry.host}/tokens/app",
              f"{plain_registry.host}/tokenmirror")
    asked = issuer.requests[before:]
    # the tag list and then every image read from tokens/app: one scope set, one token (the images used to
    # fetch one each)
    assert len(asked) == 1 and asked[0]["ok"] and asked[0]["scope"] == ["repository:tokens/app:pull"]
    tags = plain_registry.raw_get("/v2/tokenmirror/app/tags/list").json()["tags"]
    assert sorted(tags) == [f"t{i}" for i in range(count)]


def test_a_held_blob_location_cache_is_written_once_when_released(tmp_path: Path) -> None:
    path = tmp_path / "locations.json"
    cache = locations.BlobLocations(path)
    with cache.held():
        with cache.held():  # holds nest: only the outermost release writes
            cache.record("reg:5000", "ns/a", "sha256:" + "1" * 64)
            cache.save()
        cache.record("reg:5000", "ns/b", "sha256:" + "1" * 64)
        cache.save()
        assert not path.exists()
    assert json.loads(path.read_text()) == {"reg:5000": {"sha256:" + "1" * 64: ["ns/b", "ns/a"]}}


def test_a_layer_the_platforms_share_is_stored_and_checked_once(proxy: FaultProxy, tmp_path: Path) -> None:
    from imagetool import media
    from imagetool.descriptor import Descriptor, Platform
    from imagetool.manifest import Index
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import random_layer, write_image

    base = random_layer(30_000, 811)
    arches = ["amd64", "arm64", "s390x"]
    images = [write_image(tmp_path / "src", None, [base, random_layer(30_000, 820 + i)], architecture=a,
                          create=i == 0) for i, a in enumerate(arches)]
    store = LayoutStore.open(tmp_path / "src")
    index = Index.build(media.OCI_INDEX, [d.with_(platform=Platform(a, "linux"), annotations={})
                                          for d, a in zip(images, arches, strict=True)])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "all")])
    imagetool("copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{tmp_path}/src:all", proxy.ref("trips/multi:all"))
    shared = json.loads(store.read_blob(images[0].digest))["layers"][0]["digest"].split(":")[1]
    about = [(r.method, r.status) for r in proxy.records if shared in r.path]
    # one check (absent: its upload opened) and one upload; the other platforms wait for it and trust it
    assert about == [("POST", 202), ("PUT", 201)]
    back = imagetool("inspect", "--raw", "--tls-verify=false", proxy.ref("trips/multi:all")).stdout
    assert json.loads(back)["manifests"][0]["digest"] == str(images[0].digest)
