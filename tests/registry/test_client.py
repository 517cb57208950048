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


def test_chunked_upload_of_an_unknown_size_stream(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    up = BlobUploader(c, "client/chunks")
    digest, size = up.upload(io.BytesIO(data), None, None)
    assert (digest, size) == (Digest.of(data), len(data))
    assert up.patches == 3
    reader = c.get_blob("client/chunks", digest, size)
    got = b"".join(iter(lambda: reader.read(1 << 20), b""))
    assert got == data


def test_upload_with_a_wrong_digest_is_refused_and_nothing_is_stored(plain_registry: Registry) -> None:
    c = _client(plain_registry)
    claimed = Digest.of(b"something else")
    with pytest.raises(Exception) as err:
        BlobUploader(c, "client/bad").upload(io.BytesIO(os.urandom(3 << 20)), claimed, 3 << 20)
    assert "digest mismatch" in str(err.value).lower()
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
