"""Image records of a containers/storage store: overlay-images/images.json and each image's big data.

An image is its id (the config digest's hex, as containers/image chooses it), its names (unique across the
store: a name given to one image is taken from any other), its top layer and big data items: the config
under its digest, the manifest under "manifest" and "manifest-<digest>".
"""

from __future__ import annotations

import json
import time
from typing import Any

from imagetool.digest import Digest
from imagetool.errors import ManifestUnknown
from imagetool.layer.chunked_tar import rfc3339
from imagetool.reference import DockerReference
from imagetool.transports.containers_storage.store import Store, atomic_write

MANIFEST_KEY = "manifest"


def manifest_key(digest: Digest) -> str:
    return f"{MANIFEST_KEY}-{digest}"


def signature_key(digest: Digest) -> str:
    return f"signature-{digest.hex}"  # containers/image: the encoded part only


def signatures(store: Store, img: dict[str, Any], manifest_digest: Digest | None) -> list[bytes]:
    """The image's signature envelopes: those of `manifest_digest` when kept per manifest, else the
    image's own; cut apart with the sizes the metadata lists."""
    try:
        meta = json.loads(img.get("metadata") or "{}")
    except ValueError:
        return []
    if not isinstance(meta, dict):
        return []
    sizes, blob = None, None
    per = meta.get("signatures-sizes")
    if manifest_digest is not None and isinstance(per, dict) and str(manifest_digest) in per:
        sizes = per[str(manifest_digest)]
        blob = store.read_big_data(str(img["id"]), signature_key(manifest_digest))
    if blob is None:
        sizes = meta.get("signature-sizes")
        blob = store.read_big_data(str(img["id"]), "signatures")
    if blob is None or not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
        return []
    if sum(sizes) != len(blob):
        raise ManifestUnknown(f"containers-storage: image {img['id']}: its signatures do not match their sizes")
    out, pos = [], 0
    for n in sizes:
        out.append(blob[pos:pos + n])
        pos += n
    return out


def find_by_id(images: list[dict[str, Any]], image_id: str) -> dict[str, Any] | None:
    return next((img for img in images if img.get("id") == image_id), None)


def find_by_prefix(images: list[dict[str, Any]], prefix: str) -> str | None:
    found = [img["id"] for img in images if str(img.get("id", "")).startswith(prefix)]
    return found[0] if len(found) == 1 else None


def _digests(img: dict[str, Any]) -> set[str]:
    found = {str(img["digest"])} if img.get("digest") else set()
    found.update(str(v) for k, v in (img.get("big-data-digests") or {}).items()
                 if k == MANIFEST_KEY or k.startswith(MANIFEST_KEY + "-"))
    return found


def resolve(images: list[dict[str, Any]], named: DockerReference | None, image_id: str,
            where: str = "") -> dict[str, Any]:
    """The image a reference means, as containers/image's resolveImage looks it up; `where` is the store
    specification its errors name."""
    if image_id:
        img = find_by_id(images, image_id)
        if img is None:
            raise ManifestUnknown(f"identifier is not an image: {image_id}")
        if named is not None and named.digest is None and str(named) not in (img.get("names") or []):
            raise ManifestUnknown(f"image {image_id} is not named {named}")
        return img
    assert named is not None
    text = str(named)
    for img in images:
        if text in (img.get("names") or []):
            return img
    if named.digest is not None:
        repo = named.name
        for img in images:
            if str(named.digest) in _digests(img) and any(
                    str(n).split("@")[0].rsplit(":", 1)[0] == repo or str(n).split("@")[0] == repo
                    for n in img.get("names") or []):
                return img
    raise ManifestUnknown(f"reference \"{where or '[]'}{text}\" does not resolve to an image ID: "
                          "identifier is not an image")


def put_image(store: Store, images: list[dict[str, Any]], image_id: str, top_layer: str | None,
              big_data: dict[str, bytes], manifest_digest: Digest, created: str | None,
              names: list[str]) -> dict[str, Any]:
    """Create or update the image record and write its big data (the caller holds the write locks and saves
    `images`)."""
    img = find_by_id(images, image_id)
    if img is None:
        img = {"id": image_id, "digest": str(manifest_digest)}
        if top_layer:
            img["layer"] = top_layer
        img["metadata"] = "{}"
        img["created"] = created or rfc3339(time.time_ns())
        images.append(img)
    (store.images_dir / image_id).mkdir(mode=0o700, exist_ok=True)
    keys = list(img.get("big-data-names") or [])
    sizes = dict(img.get("big-data-sizes") or {})
    digests = dict(img.get("big-data-digests") or {})
    for key, data in big_data.items():
        atomic_write(store.big_data_path(image_id, key), data, 0o600)
        if key not in keys:
            keys.append(key)
        sizes[key] = len(data)
        # the manifest items' digest is the manifest's, whatever the key (containers/storage's rule)
        digests[key] = str(Digest.of(data))
    img["big-data-names"] = keys
    img["big-data-sizes"] = sizes
    img["big-data-digests"] = digests
    img["digest"] = digests.get(MANIFEST_KEY, str(manifest_digest))
    for name in names:
        for other in images:
            if other is not img and name in (other.get("names") or []):
                other["names"] = [n for n in other["names"] if n != name]
                if not other["names"]:
                    del other["names"]
        current = list(img.get("names") or [])
        if name not in current:
            img["names"] = current + [name]
        history = [name] + [n for n in img.get("names-history") or [] if n != name]
        img["names-history"] = history
    return img
