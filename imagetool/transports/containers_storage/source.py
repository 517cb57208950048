"""Reading an image out of a containers/storage store (what skopeo, podman or buildah, or we, put there).

The manifest and config are big data items. The store keeps layers unpacked, not as the blobs the manifest
names, so `layers_for_copy` offers each layer as its uncompressed tar (digest = diff_id), as
containers/image's LayerInfosForCopy does; copy then compresses as the destination wants.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import BlobUnknown, ManifestUnknown
from imagetool.manifest import Manifest, guess_media_type
from imagetool.transports.base import SourceBase
from imagetool.transports.containers_storage import images as recs
from imagetool.transports.containers_storage import layers as lay
from imagetool.transports.containers_storage.store import Store


class StorageSource(SourceBase):
    def __init__(self, reference: Any, store: Store, image: dict[str, Any],
                 layer_records: list[dict[str, Any]]) -> None:
        self.reference = reference
        self.named = reference.named
        self.store = store
        self.image = image
        self.chain = lay.chain(layer_records, image.get("layer"))

    @property
    def image_id(self) -> str:
        return str(self.image["id"])

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        named = self.named
        keys = []
        if instance is not None:
            keys.append(recs.manifest_key(instance))
        elif named is not None and named.digest is not None:
            keys.append(recs.manifest_key(named.digest))
        keys.append(recs.MANIFEST_KEY)
        for key in keys:
            raw = self.store.read_big_data(self.image_id, key)
            if raw is not None:
                return raw, guess_media_type(raw)
        raise ManifestUnknown(f"containers-storage: image {self.image_id} has no manifest")

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        raw, _ = self.get_manifest(instance)
        return recs.signatures(self.store, self.image, Digest.of(raw))

    def layers_for_copy(self, manifest: Manifest) -> list[Descriptor] | None:
        """The stored layers as uncompressed tars, in the manifest's order."""
        if len(manifest.layers) != len(self.chain):
            raise ManifestUnknown(f"containers-storage: image {self.image_id} has {len(self.chain)} layers, "
                                  f"its manifest lists {len(manifest.layers)}")
        kind = media.OCI_LAYER if manifest.is_oci else media.DOCKER_LAYER
        out = []
        for entry in self.chain:
            diff = entry.get("diff-digest")
            if not isinstance(diff, str) or not diff:
                raise BlobUnknown(f"containers-storage: layer {entry['id']} has no diff-digest")
            size = entry.get("diff-size")
            if not isinstance(size, int) or size < 0:
                raise BlobUnknown(f"containers-storage: layer {entry['id']} has no diff-size")
            out.append(Descriptor(kind, Digest.parse(diff), size))
        return out

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        config = self.store.read_big_data(self.image_id, str(desc.digest))
        if config is not None:
            import io

            return io.BytesIO(config)
        for entry in self.chain:
            if entry.get("diff-digest") == str(desc.digest):
                return cast(BinaryIO, lay.open_diff(self.store, entry))
        raise BlobUnknown(f"containers-storage: blob {desc.digest} is not in image {self.image_id} "
                          "(the store keeps layers uncompressed)")
