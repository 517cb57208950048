"""The distribution API client against the real registry: uploads, listings, referrers, deletes."""

from __future__ import annotations

import io
import json
import os

import pytest

from imagetool import media
from imagetool.digest import Digest
from imagetool.errors import ManifestUnknown
from imagetool.registry import locations
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.errors import error_from_response, TooManyRequests, Unauthorized, Denied
from imagetool.registry.upload import CHUNK_SIZE, BlobUploader
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _client(reg: Registry) -> Client:
    return Client(reg.host, ClientOptions(tls_verify=False))


def _manifest(c: Client, repo: str, label: str) -> bytes:
    cfg = json.dumps({"label": label}).encode()
    BlobUploader(c, repo).upload(io.BytesIO(cfg), Digest.of(cfg), len(cfg))
    return json.dumps({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                       "config": {"mediaType": media.OCI_CONFIG, "digest": str(Digest.of(cfg)), "size": len(cfg)},
                       "layers": []}).encode()


class _Once:
    """A stream that can be read only once (as a compressor's pipe): no way to read it again after a cut."""

    def __init__(self, data: bytes) -> None:
        self._raw = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._raw.read(n)


def test_chunked_upload_of_an_unknown_size_stream(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    up = BlobUploader(c, "client/chunks")
    digest, size = up.upload(_Once(data), None, None)
    assert (digest, size) == (Digest.of(data), len(data))
    assert up.patches == 3  # a stream that cannot be read again goes in chunks, each held until acknowledged
    reader = c.get_blob("client/chunks", digest, size)
    got = b"".join(iter(lambda: reader.read(1 << 20), b""))
    assert got == data


def test_a_stream_of_unknown_size_that_can_be_read_again_goes_in_one_patch(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    up = BlobUploader(c, "client/streamed")
    digest, size = up.upload(io.BytesIO(data), None, None)
    assert (digest, size) == (Digest.of(data), len(data))
    assert up.patches == 1
    reader = c.get_blob("client/streamed", digest, size)
    got = b"".join(iter(lambda: reader.read(1 << 20), b""))
    assert got == data


def test_upload_with_a_wrong_digest_is_refused_and_nothing_is_stored(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    claimed = Digest.of(b"something else")
    with pytest.raises(Exception) as err:
        BlobUploader(c, "client/bad").upload(io.BytesIO(os.urandom(3 << 20)), claimed, 3 << 20)
    assert "did not match" in str(err.value)  # the registry checks the digest at the final PUT
    assert c.head_blob("client/bad", claimed) is None


def test_list_tags_returns_more_than_a_hundred(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    raw = _manifest(c, "client/many", "many")
    want = {f"t{i:03d}" for i in range(130)}
    for tag in want:
        c.put_manifest("client/many", tag, raw, media.OCI_MANIFEST)
    assert set(c.list_tags("client/many")) == want
    assert set(c.list_tags("client/many", page_size=50)) == want


def test_catalog_follows_link_pagination(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    for i in range(5):
        raw = _manifest(c, f"client/cat{i}", "cat")
        c.put_manifest(f"client/cat{i}", "v1", raw, media.OCI_MANIFEST)
    resp = c.send("GET", "/v2/_catalog", scopes=set(), params={"n": "2"}, what="catalog page")
    assert 'rel="next"' in resp.headers.get("Link", "")  # the real registry pages ...
    repos = c.catalog(page_size=2)
    assert {f"client/cat{i}" for i in range(5)} <= set(repos)  # ... and every page was read
    assert len(repos) == len(set(repos))


def test_manifest_get_head_delete(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    raw = _manifest(c, "client/m", "m")
    digest = c.put_manifest("client/m", "v1", raw, media.OCI_MANIFEST)
    assert c.get_manifest("client/m", "v1") == (raw, media.OCI_MANIFEST)
    assert c.get_manifest("client/m", str(digest))[0] == raw
    head = c.head_manifest("client/m", "v1")
    assert head is not None and head.digest == digest and head.size == len(raw)
    c.delete_manifest("client/m", digest)
    assert c.head_manifest("client/m", "v1") is None
    with pytest.raises(ManifestUnknown):
        c.get_manifest("client/m", "v1")


def test_referrers_fall_back_to_the_tag_schema(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    subject = _manifest(c, "client/ref", "subject")
    sdigest = c.put_manifest("client/ref", "v1", subject, media.OCI_MANIFEST)
    assert c.referrers("client/ref", sdigest) == []
    artifact = _manifest(c, "client/ref", "sig")
    adigest = c.put_manifest("client/ref", "art", artifact, media.OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
        {"mediaType": media.OCI_MANIFEST, "digest": str(adigest), "size": len(artifact),
         "artifactType": "application/example"}]}).encode()
    c.put_manifest("client/ref", f"sha256-{sdigest.hex}", index, media.OCI_INDEX)
    found = c.referrers("client/ref", sdigest)
    assert [d.digest for d in found] == [adigest]
    assert c.referrers("client/ref", sdigest, "application/other") == []


def test_error_codes_map_to_typed_errors() -> None:
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    assert isinstance(error_from_response(403, body, {}, "push"), Denied)
    assert isinstance(error_from_response(401, b"", {}, "push"), Unauthorized)
    e = error_from_response(429, b"", {"Retry-After": "7"}, "pull")
    assert isinstance(e, TooManyRequests) and e.retry_after == 7 and e.temporary
    assert isinstance(error_from_response(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {}, "x"),
                      ManifestUnknown)
    assert error_from_response(503, b"", {}, "x").temporary  # type: ignore[attr-defined]


def test_blob_locations_persist_across_instances(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "locs.json"
    a = locations.BlobLocations(path)
    a.record("reg:5000", "ns/one", "sha256:" + "1" * 64)
    a.save()
    b = locations.BlobLocations(path)
    b.record("reg:5000", "ns/two", "sha256:" + "1" * 64)
    b.save()
    c = locations.BlobLocations(path)
    assert c.candidates("reg:5000", "sha256:" + "1" * 64) == ["ns/two", "ns/one"]
    assert c.candidates("other:5000", "sha256:" + "1" * 64) == []


def test_referrers_api_is_preferred_when_the_registry_has_it(plain_registry: Registry) -> None:
    """The Debian registry (2.8) lacks OCI 1.1 referrers; the proxy answers that endpoint with a real index."""
    from tests.lib.faultproxy import FaultProxy

    proxy = FaultProxy(plain_registry.host)
    try:
        c = Client(proxy.host, ClientOptions(tls_verify=False))
        subject = _manifest(c, "client/refapi", "subject")
        sdigest = c.put_manifest("client/refapi", "v1", subject, media.OCI_MANIFEST)
        arts = []
        for label in ("sig", "sbom"):
            raw = _manifest(c, "client/refapi", label)
            arts.append((c.put_manifest("client/refapi", label, raw, media.OCI_MANIFEST), len(raw)))
        index = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [
            {"mediaType": media.OCI_MANIFEST, "digest": str(d), "size": n, "artifactType": f"application/{kind}"}
            for (d, n), kind in zip(arts, ("sig", "sbom"), strict=True)]}).encode()
        proxy.clear()
        proxy.add("GET", rf"/v2/client/refapi/referrers/{sdigest}", status=200, body=index, times=2,
                  headers={"Content-Type": media.OCI_INDEX})
        assert [d.digest for d in c.referrers("client/refapi", sdigest)] == [d for d, _ in arts]
        found = c.referrers("client/refapi", sdigest, "application/sbom")
        assert [(d.digest, d.artifact_type) for d in found] == [(arts[1][0], "application/sbom")]
        asked = [r.path for r in proxy.records if r.method == "GET"]
        # (records come from the proxy's threads, so their order is not the order of the requests)
        assert sum(p.endswith("?artifactType=application%2Fsbom") for p in asked) == 1
        assert not any("/manifests/sha256-" in p for p in asked)  # no tag-schema fallback was needed
    finally:
        proxy.close()


def test_keep_alive_connections_are_reused_only_when_drained(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    data = os.urandom(300_000)
    digest, _ = BlobUploader(c, "client/keepalive").upload(io.BytesIO(data), None, None)
    pool = c.session.pool
    key = ("http", plain_registry.host)
    assert c.head_blob("client/keepalive", digest) == len(data)
    sock = pool._idle[key][-1].sock
    for _ in range(5):
        assert c.head_blob("client/keepalive", digest) == len(data)
    assert len(pool._idle[key]) == 1 and pool._idle[key][-1].sock is sock  # one connection served them all
    # a body abandoned half-way: that connection is closed, not handed to the next request
    resp = c.open_blob_response("client/keepalive", digest, 0)
    assert resp.raw.read(1000) == data[:1000]
    resp.close()
    assert pool._idle[key] == [] and sock.fileno() == -1  # it took the idle connection, and closed it
    reader = c.get_blob("client/keepalive", digest, len(data))
    assert b"".join(iter(lambda: reader.read(1 << 16), b"")) == data
    assert len(pool._idle[key]) == 1 and pool._idle[key][-1].sock is not sock  # a fresh one, drained, went back


def test_blob_locations_file_is_rewritten_only_with_news(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "locs.json"
    a = locations.BlobLocations(path)
    a.record("reg:5000", "ns/one", "sha256:" + "2" * 64)
    a.save()
    inode = path.stat().st_ino  # a save replaces the file (temp + rename): a new inode
    b = locations.BlobLocations(path)
    b.record("reg:5000", "ns/one", "sha256:" + "2" * 64)  # already known
    b.save()
    assert path.stat().st_ino == inode
    b.record("reg:5000", "ns/two", "sha256:" + "2" * 64)  # news
    b.save()
    assert path.stat().st_ino != inode
    assert locations.BlobLocations(path).candidates("reg:5000", "sha256:" + "2" * 64) == ["ns/two", "ns/one"]


def test_blob_locations_keep_the_most_recent_digests_of_all_hosts(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Test registries on fresh ports each add a host: the file stays bounded, the hosts seen least recently
    going first (then a host's oldest digests)."""
    monkeypatch.setattr(locations, "MAX_DIGESTS", 4)
    path = tmp_path / "locs.json"

    def digest(n: int) -> str:
        return f"sha256:{n:064x}"

    for n, host in enumerate(["old:1", "old:1", "mid:2", "new:3"]):
        cache = locations.BlobLocations(path)
        cache.record(host, "ns/a", digest(n))
        cache.save()
    cache = locations.BlobLocations(path)
    cache.record("old:1", "ns/b", digest(0))  # seen again: old:1 and its digest 0 are now the most recent
    cache.record("new:3", "ns/a", digest(9))
    cache.save()
    with path.open() as f:
        assert list(json.load(f)) == ["old:1", "new:3"]
    kept = locations.BlobLocations(path)
    assert kept.candidates("mid:2", digest(2)) == []  # the host seen least recently went
    assert kept.candidates("old:1", digest(1)) == ["ns/a"]
    assert kept.candidates("old:1", digest(0)) == ["ns/b", "ns/a"]
    assert kept.candidates("new:3", digest(3)) == kept.candidates("new:3", digest(9)) == ["ns/a"]
    assert sum(map(len, json.loads(path.read_text()).values())) == 4
