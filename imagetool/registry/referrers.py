"""OCI 1.1 referrers on a registry: artifacts whose manifest names an image as its `subject`.

Writing: the artifact's blobs, then its manifest by digest. A registry with the referrers API
answers that PUT with an `OCI-Subject` header and indexes the artifact itself; without one
(Distribution 2.8), the writer keeps the image's referrers in an OCI index tagged
`<alg>-<hex>` (the spec's "referrers tag schema"). Reading: `Client.referrers` asks the API,
falling back to that tag. Copying: each referrer's blobs and manifest, then the same write.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Sequence

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ManifestError, ManifestUnknown, NotFound
from imagetool.registry.client import Client, push_scope
from imagetool.registry.upload import BlobUploader

EMPTY_CONFIG = b"{}"
#: referrers of referrers (a signature of an SBOM) are followed this deep when copying
MAX_DEPTH = 3


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict)


def tag_for(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.hex}"


def _descriptor_dict(d: Descriptor) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": d.media_type, "digest": str(d.digest), "size": d.size}
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    return out


def _put_blob(client: Client, repo: str, data: bytes) -> Descriptor:
    digest = Digest.of(data)
    if client.head_blob(repo, digest) != len(data):
        BlobUploader(client, repo).upload(io.BytesIO(data), digest, len(data))
    return Descriptor("application/octet-stream", digest, len(data))


def put_referrer_manifest(client: Client, repo: str, raw: bytes, media_type: str, subject: Digest) -> Descriptor:
    """Store a manifest that has a subject; index it under the tag schema when the registry does not."""
    digest = Digest.of(raw)
    resp = client.send("PUT", f"/v2/{repo}/manifests/{digest}", scopes={push_scope(repo)}, ok=(200, 201, 202),
                       headers={"Content-Type": media_type}, data=raw,
                       what=f"writing referrer {digest.short} to {client.domain}/{repo}")
    resp.close()
    doc = json.loads(raw)
    desc = Descriptor(media_type, digest, len(raw), dict(doc.get("annotations") or {}),
                      artifact_type=str(doc.get("artifactType") or (doc.get("config") or {}).get("mediaType", "")))
    if not resp.headers.get("OCI-Subject"):
        add_to_tag_index(client, repo, subject, desc)
    return desc


def add_to_tag_index(client: Client, repo: str, subject: Digest, desc: Descriptor) -> None:
    """Add `desc` to the subject's `<alg>-<hex>` index (creating it), keeping what others put there."""
    tag = tag_for(subject)
    manifests: list[dict[str, object]] = []
    try:
        raw, _ = client.get_manifest(repo, tag)
        doc = json.loads(raw)
        manifests = list(doc.get("manifests") or [])
    except (ManifestUnknown, NotFound):
        pass
    except (ValueError, AttributeError) as err:
        raise ManifestError(f"referrers index {tag} in {repo} is not a JSON index: {err}") from err
    if any(m.get("digest") == str(desc.digest) for m in manifests if isinstance(m, dict)):
        return
    manifests.append(_descriptor_dict(desc))
    index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": manifests}
    client.put_manifest(repo, tag, json.dumps(index, separators=(",", ":")).encode(), media.OCI_INDEX)


def attach(client: Client, repo: str, subject: Descriptor, artifact_type: str, blobs: Sequence[Blob],
           annotations: dict[str, str] | None = None) -> Descriptor:
    """Push an artifact manifest (empty config, `blobs` as layers) whose subject is `subject`."""
    config = _put_blob(client, repo, EMPTY_CONFIG)
    layers = []
    for blob in blobs:
        d = _put_blob(client, repo, blob.data)
        layer: dict[str, object] = {"mediaType": blob.media_type, "digest": str(d.digest), "size": d.size}
        if blob.annotations:
            layer["annotations"] = dict(blob.annotations)
        layers.append(layer)
    manifest: dict[str, object] = {
        "schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": media.OCI_EMPTY, "digest": str(config.digest), "size": config.size},
        "layers": layers,
        "subject": {"mediaType": subject.media_type, "digest": str(subject.digest), "size": subject.size},
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return put_referrer_manifest(client, repo, raw, media.OCI_MANIFEST, subject.digest)


def list_referrers(client: Client, repo: str, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
    return client.referrers(repo, subject, artifact_type)


def read_layers(client: Client, repo: str, desc: Descriptor, limit: int) -> list[tuple[Descriptor, bytes]]:
    """The layers of a referrer (each at most `limit` bytes), with their bytes."""
    raw, _ = client.get_manifest(repo, str(desc.digest))
    try:
        layers = [Descriptor.from_dict(x) for x in json.loads(raw).get("layers") or []]
    except (ValueError, AttributeError) as err:
        raise ManifestError(f"referrer {desc.digest.short} is not a manifest: {err}") from err
    out = []
    for layer in layers:
        if layer.size > limit:
            raise ManifestError(f"referrer layer {layer.digest.short} is too large ({layer.size} bytes)")
        reader = client.get_blob(repo, layer.digest, layer.size)
        try:
            data = reader.read(limit + 1)
        finally:
            reader.close()
        if Digest.of(data) != layer.digest:
            raise ManifestError(f"referrer layer {layer.digest.short} does not match its digest")
        out.append((layer, data))
    return out


def copy_referrers(src: Client, src_repo: str, dst: Client, dst_repo: str, subject: Digest,
                   depth: int = 0) -> list[Descriptor]:
    """Copy every referrer of `subject` (and theirs, MAX_DEPTH deep); the descriptors copied."""
    copied: list[Descriptor] = []
    if depth >= MAX_DEPTH:
        return copied
    for desc in src.referrers(src_repo, subject):
        raw, mt = src.get_manifest(src_repo, str(desc.digest))
        try:
            doc = json.loads(raw)
            blobs = [Descriptor.from_dict(doc["config"])] if isinstance(doc.get("config"), dict) else []
            blobs += [Descriptor.from_dict(x) for x in doc.get("layers") or doc.get("blobs") or []]
        except (ValueError, AttributeError, KeyError) as err:
            raise ManifestError(f"referrer {desc.digest.short} is not a manifest: {err}") from err
        for blob in blobs:
            if dst.head_blob(dst_repo, blob.digest) == blob.size:
                continue
            if not (src.domain == dst.domain and dst.mount_blob(dst_repo, blob.digest, src_repo)):
                reader = src.get_blob(src_repo, blob.digest, blob.size)
                try:
                    BlobUploader(dst, dst_repo).upload(reader, blob.digest, blob.size)
                finally:
                    reader.close()
        copied.append(put_referrer_manifest(dst, dst_repo, raw, mt or desc.media_type, subject))
        copied += copy_referrers(src, src_repo, dst, dst_repo, desc.digest, depth + 1)
    return copied
