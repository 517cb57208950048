"""Writing an image into a containers/storage store, as containers/image's storage destination does.

put_blob stages each layer (decompressed, tar-split recorded, unpacked) outside the store's names; commit
then, under the store's write locks, names the layers in the manifest's order (reusing any layer whose id,
or whose diff_id on another parent, the store already has), writes the image's big data (config,
manifest, manifest-<digest>) and its record, and moves the reference's name to it. A copy that fails
before commit leaves only staging directories, which are removed on close.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, Readable
from imagetool.errors import BlobUnknown, ManifestUnknown, UnsupportedManifest
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.transports.base import DestinationBase, DestinationTraits
from imagetool.transports.containers_storage import images as recs
from imagetool.transports.containers_storage import layers as lay
from imagetool.transports.containers_storage.store import Store

TRAITS = DestinationTraits(layer_compression="preserve", supports_index=False, supports_signatures=True)


class StorageDestination(DestinationBase):
    traits = TRAITS

    def __init__(self, reference: Any, store: Store) -> None:
        self.reference = reference
        self.named = reference.named
        self.store = store
        store.ensure()
        lay.clear_staging(store)
        self._staged: dict[Digest, lay.Staged] = {}   # by blob digest
        self._configs: dict[Digest, bytes] = {}
        self._manifest: tuple[bytes, str] | None = None
        self._signatures: list[bytes] = []
        self.image_id: str | None = None

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        """True when a layer of the store was made from this blob (compressed or not): commit rebuilds it
        on another parent if it has to."""
        with self.store.read():
            text = str(desc.digest)
            return any(text in (e.get("compressed-diff-digest"), e.get("diff-digest")) and not lay.incomplete(e)
                       for e in self.store.layers())

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        if is_config:
            from imagetool.digest import VerifyingReader

            reader = VerifyingReader(stream, desc.digest, desc.size) if desc else stream
            data = b""
            while block := reader.read(1 << 20):
                data += block
            digest = Digest.of(data)
            self._configs[digest] = data
            return Descriptor(desc.media_type if desc else "application/octet-stream", digest, len(data))
        staged = lay.stage(self.store, stream, desc.digest if desc else None, desc.size if desc else None)
        old = self._staged.pop(staged.compressed_digest, None)
        if old is not None:
            old.discard()
        self._staged[staged.compressed_digest] = staged
        return Descriptor(desc.media_type if desc else "application/octet-stream", staged.compressed_digest,
                          staged.compressed_size)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None:
        if instance is not None:
            raise UnsupportedManifest("containers-storage: stores one image, not a list (use a platform)")
        self._manifest = (raw, media_type)

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None:
        """Kept as containers/image keeps them: the envelopes end to end in the "signatures" and
        "signature-<manifest digest>" big data, their sizes in the image's metadata."""
        if instance is not None:
            raise UnsupportedManifest("containers-storage: stores one image, not a list (use a platform)")
        self._signatures = list(signatures)

    # -- commit

    def _diff_id_of(self, desc: Descriptor, config_diff: Digest | None, layers: list[dict[str, Any]]) -> Digest:
        staged = self._staged.get(desc.digest)
        if staged is not None:
            return staged.diff_id
        if config_diff is not None:
            return config_diff
        for e in layers:
            if str(desc.digest) in (e.get("compressed-diff-digest"), e.get("diff-digest")):
                return Digest.parse(str(e["diff-digest"]))
        raise BlobUnknown(f"containers-storage: layer {desc.digest} was neither written nor found in the store")

    def _layer_from_store(self, layers: list[dict[str, Any]], diff_id: Digest) -> lay.Staged:
        """A layer the store has on another parent, rebuilt from its exact tar."""
        for e in layers:
            if e.get("diff-digest") == str(diff_id):
                staged = lay.stage(self.store, lay.open_diff(self.store, e))
                if e.get("compressed-diff-digest"):
                    staged.compressed_digest = Digest.parse(str(e["compressed-diff-digest"]))
                    staged.compressed_size = int(e.get("compressed-size") or 0)
                    staged.compression = {1: "bzip2", 2: "gzip", 3: "xz", 4: "zstd"}.get(e.get("compression") or 0)
                return staged
        raise BlobUnknown(f"containers-storage: no layer with diff_id {diff_id} in the store")

    def commit(self) -> None:
        if self._manifest is None:
            raise ManifestUnknown("commit before the manifest was written")
        raw, media_type = self._manifest
        manifest = parse_manifest(raw, media_type)
        config_raw = self._configs.get(manifest.config.digest)
        if config_raw is None:
            raise BlobUnknown(f"containers-storage: config {manifest.config.digest} was not written")
        config = ImageConfig.parse(config_raw)
        diff_ids = list(config.diff_ids)
        manifest_digest = Digest.of(raw)
        with self.store.write():
            layers = self.store.layers()
            lay.drop_incomplete(self.store, layers)
            parent: str | None = None
            for i, desc in enumerate(manifest.layers):
                diff_id = self._diff_id_of(desc, diff_ids[i] if i < len(diff_ids) else None, layers)
                staged = self._staged.get(desc.digest)
                if staged is not None and staged.diff_id != diff_id:
                    raise UnsupportedManifest(f"layer {desc.digest}: its diff_id is {staged.diff_id}, "
                                              f"the config says {diff_id}")
                new_id = lay.layer_id(diff_id, parent)
                if lay.find(layers, new_id) is None:
                    if staged is None:
                        staged = self._layer_from_store(layers, diff_id)
                    else:
                        del self._staged[desc.digest]
                    lay.install(self.store, layers, staged, new_id, parent)
                parent = new_id
            self.store.save_layers(layers)
            images = self.store.images()
            image_id = manifest.config.digest.hex
            big = {str(manifest.config.digest): config_raw, recs.manifest_key(manifest_digest): raw,
                   recs.MANIFEST_KEY: raw}
            named = self.named
            names = [str(named)] if named is not None and named.digest is None else []
            if self._signatures:
                blob = b"".join(self._signatures)
                big["signatures"] = big[recs.signature_key(manifest_digest)] = blob
            img = recs.put_image(self.store, images, image_id, parent, big, manifest_digest, config.created, names)
            if self._signatures:
                sizes = [len(sig) for sig in self._signatures]
                img["metadata"] = json.dumps({"signature-sizes": sizes,
                                              "signatures-sizes": {str(manifest_digest): sizes}},
                                             separators=(",", ":"))
            if img.get("layer") != parent and parent:
                img["layer"] = parent
            self.store.save_images(images)
        self.image_id = image_id

    def close(self) -> None:
        for staged in self._staged.values():
            staged.discard()
        self._staged.clear()
