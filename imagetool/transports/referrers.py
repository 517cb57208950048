"""Referrers of an image named by a transport reference: list them, attach an artifact (as `oras attach`)."""

from __future__ import annotations

import mimetypes
import os
from typing import Any, Sequence

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import Unsupported, UsageError
from imagetool.manifest import guess_media_type
from imagetool.transports.base import ImageReference, SystemContext

#: the annotation oras and the OCI image spec use for a layer's file name
TITLE = "org.opencontainers.image.title"


def _registry_source(ref: ImageReference, ctx: SystemContext) -> Any:
    if ref.transport_name != "docker":
        raise Unsupported(f"{ref.transport_name}: referrers live in registries (use docker://)")
    return ref.open_source(ctx)


def _subject(src: Any) -> Descriptor:
    raw, mt = src.get_manifest()
    return Descriptor(mt or guess_media_type(raw), Digest.of(raw), len(raw))


def list_for(ref: ImageReference, ctx: SystemContext, artifact_type: str | None = None) -> list[dict[str, Any]]:
    """artifactType, mediaType, digest, size and annotations of each referrer of the image."""
    from imagetool.registry.referrers import list_referrers

    src = _registry_source(ref, ctx)
    try:
        subject = _subject(src)
        found = list_referrers(src.client, src.repo, subject.digest, artifact_type)
    finally:
        src.close()
    return [{"artifactType": d.artifact_type, "mediaType": d.media_type, "digest": str(d.digest), "size": d.size,
             "annotations": dict(d.annotations)} for d in found]


def parse_annotations(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"annotation {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def attach(ref: ImageReference, ctx: SystemContext, artifact_type: str, files: Sequence[str],
           annotations: dict[str, str]) -> Descriptor:
    """Push an artifact holding `files` (one layer each, named by TITLE) whose subject is the image."""
    from imagetool.registry.referrers import Blob
    from imagetool.registry.referrers import attach as push

    if not artifact_type:
        raise UsageError("an artifact type is required")
    blobs = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise UsageError(f"reading {path}: {err.strerror or err}") from err
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        blobs.append(Blob(data, kind, {TITLE: os.path.basename(path)}))
    src = _registry_source(ref, ctx)
    try:
        return push(src.client, src.repo, _subject(src), artifact_type, blobs, annotations)
    finally:
        src.close()
