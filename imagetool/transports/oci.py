"""oci:PATH[:REF] — an OCI image layout directory (skopeo's syntax: the path ends at the first colon)."""

from __future__ import annotations

import os
import re
import shutil
from typing import BinaryIO, Sequence

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, Readable
from imagetool.errors import (
    ImagetoolError,
    InvalidReference,
    LayoutError,
    ManifestUnknown,
    NotFound,
    StoreLocked,
    Unsupported,
    UnsupportedManifest,
)
from imagetool.manifest import guess_media_type
from imagetool.store import refs
from imagetool.store.layout import BLOBS, INDEX_FILE, OCI_LAYOUT_FILE, LayoutStore
from imagetool.transports import envelopes
from imagetool.transports.base import (
    DestinationBase,
    DestinationTraits,
    ImageDestination,
    ImageSource,
    ReferenceBase,
    SourceBase,
    SystemContext,
)

TRANSPORT_NAME = "oci"
_REF_NAME = re.compile(r"^[A-Za-z0-9._\-:@/+]+$")


def split_path_and_ref(text: str, transport: str) -> tuple[str, str | None]:
    path, _, name = text.partition(":")
    if not path:
        raise InvalidReference(f"{transport}: reference {text!r} has no path")
    if name and not _REF_NAME.match(name):
        raise InvalidReference(f"{transport}: invalid image reference name {name!r}")
    return path, name or None


def path_scopes(path: str) -> list[str]:
    """The resolved path, then each parent directory, like containers/image.

    The image name is not part of the identity: `dir:` and `dir:name` may be the same image.
    """
    resolved = os.path.realpath(path)
    scopes = [resolved]
    parent = os.path.dirname(resolved)
    while parent and parent != "/":
        scopes.append(parent)
        parent = os.path.dirname(parent)
    return scopes


class _Tagged:
    """Names beside the image in the same layout: sigstore attachments (`sha256-<hex>.sig`).

    `tag_prefix` turns a tag into an index.json name: "" in an OCI layout, "REPO:" in the local
    store; None when the image has no repository to attach to.
    """

    store: LayoutStore
    tag_prefix: str | None

    def get_tagged_manifest(self, tag: str) -> tuple[bytes, str] | None:
        if self.tag_prefix is None:
            return None
        try:
            desc = refs.resolve(self.store, self.tag_prefix + tag)
        except NotFound:
            return None
        return self.store.read_blob(desc.digest, envelopes.MAX_ATTACHMENT_LAYER), desc.media_type

    def get_blob_bytes(self, digest: Digest, limit: int = envelopes.MAX_ATTACHMENT_LAYER) -> bytes:
        return self.store.read_blob(digest, limit)


class LayoutSource(_Tagged, SourceBase):
    """Reads one image (or index) out of a LayoutStore; `top` is its index.json entry."""

    def __init__(self, reference: ReferenceBase, store: LayoutStore, top: Descriptor,
                 tag_prefix: str | None = "") -> None:
        self.reference = reference  # type: ignore[assignment]
        self.store = store
        self.top = top
        self.tag_prefix = tag_prefix

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        digest = instance or self.top.digest
        if not self.store.has_blob(digest):
            raise ManifestUnknown(f"manifest {digest} not found in {self.store.root}")
        raw = self.store.read_blob(digest)
        mt = self.top.media_type if instance is None and self.top.media_type else guess_media_type(raw)
        return raw, mt

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        return self.store.open_blob(desc.digest)

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        found = envelopes.source_attachments(self, instance or self.top.digest)
        return [envelopes.serialize(sig) for sig in found or []]


class LayoutDestination(_Tagged, DestinationBase):
    """Writes blobs straight into a LayoutStore and names the image (and its signature attachments) in
    index.json at commit, all in one index update.

    `keep_dangling`: the image the name is taken from stays as an unnamed entry (the local store).
    `tidy_new_layout`: a failed copy into a layout `store` just created takes the layout away again.
    """

    def __init__(self, reference: ReferenceBase, store: LayoutStore, name: str | None,
                 traits: DestinationTraits, expected_digest: Digest | None = None,
                 tag_prefix: str | None = "", keep_dangling: bool = False, tidy_new_layout: bool = False) -> None:
        self.reference = reference  # type: ignore[assignment]
        self.traits = traits
        self.store = store
        self.name = name
        self.tag_prefix = tag_prefix
        self.expected_digest = expected_digest
        self.keep_dangling = keep_dangling
        self.tidy_new_layout = tidy_new_layout
        self._top: Descriptor | None = None
        self._tags: dict[str, Descriptor] = {}  # attachment names, given at commit
        self._committed = False
        self._lock = store.hold_shared()
        store.sweep_temp_files()  # what killed writers left

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        return self.store.claim_blob(desc.digest, desc.size)

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        digest, size = self.store.put_blob(stream, desc.digest if desc else None, desc.size if desc else None)
        return Descriptor(desc.media_type if desc else "application/octet-stream", digest, size)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None:
        if self.traits.manifest_types and media_type not in self.traits.manifest_types:
            raise UnsupportedManifest(f"{self.reference.transport_name}: cannot store manifest type {media_type}")
        digest = self.store.put_bytes(raw)
        if instance is None:
            if self.expected_digest is not None and digest != self.expected_digest:
                raise UnsupportedManifest(f"manifest digest {digest} does not match the reference's "
                                          f"{self.expected_digest}")
            self._top = Descriptor(media_type, digest, len(raw))

    def put_blob_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        return Descriptor(media_type, self.store.put_bytes(data), len(data))

    def get_tagged_manifest(self, tag: str) -> tuple[bytes, str] | None:
        pending = self._tags.get((self.tag_prefix or "") + tag)
        if pending is not None:
            return self.store.read_blob(pending.digest, envelopes.MAX_ATTACHMENT_LAYER), pending.media_type
        return super().get_tagged_manifest(tag)

    def put_tagged_manifest(self, tag: str, raw: bytes, media_type: str) -> None:
        assert self.tag_prefix is not None
        self._tags[self.tag_prefix + tag] = self.put_blob_bytes(raw, media_type)

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None:
        """Sigstore signatures become the attachment image; a layout has no place for simple ones."""
        try:
            simple, sigstore = envelopes.split(signatures)
            if simple:
                raise Unsupported("it has no place for simple signatures")
            if sigstore and self.tag_prefix is None:
                raise Unsupported("an unnamed image has no repository to attach signatures to")
        except ImagetoolError as err:
            raise Unsupported(f"{self.reference.transport_name}: cannot store signatures: {err} "
                              "(use --remove-signatures)") from err
        digest = instance or (self._top.digest if self._top else None)
        if digest is None:
            raise ManifestUnknown("signatures before the manifest was written")
        envelopes.store_attachments(self, digest, sigstore)

    def commit(self) -> None:
        top = self._top
        if top is None:
            raise ManifestUnknown("commit before the manifest was written")

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            for name, desc in self._tags.items():
                entries = refs.with_name(entries, name, desc)
            return refs.with_name(entries, self.name, top, self.keep_dangling)

        self.store.update_index(change)
        self._committed = True

    @property
    def committed(self) -> Descriptor | None:
        return self._top

    def close(self) -> None:
        self._lock.release()
        if not self._committed and self.tidy_new_layout and self.store.created:
            _remove_new_layout(self.store)


def _remove_new_layout(store: LayoutStore) -> None:
    """Take away a layout a failed first copy made, unless another writer is in it or it names an image."""
    try:
        with store.exclusive(timeout=0):
            if store.index().manifests:
                return
            shutil.rmtree(store.root / BLOBS, ignore_errors=True)
            for name in (INDEX_FILE, OCI_LAYOUT_FILE):
                try:
                    os.unlink(store.root / name)
                except FileNotFoundError:
                    pass
    except (StoreLocked, LayoutError, OSError):
        return
    if store.made_dir:
        try:
            store.root.rmdir()
        except OSError:
            pass


OCI_TRAITS = DestinationTraits(manifest_types=(media.OCI_MANIFEST, media.OCI_INDEX), layer_compression="compress",
                               supports_signatures=True)


class PathReference(ReferenceBase):
    """PATH[:NAME], the syntax of the oci: and oci-archive: transports."""

    def __init__(self, path: str, name: str | None) -> None:
        self.path = path
        self.name = name

    def string_within_transport(self) -> str:
        return f"{self.path}:{self.name}" if self.name else self.path

    def policy_scopes(self) -> list[str]:
        return path_scopes(self.path) + [""]


class OCIReference(PathReference):
    transport_name = TRANSPORT_NAME

    def open_source(self, ctx: SystemContext) -> ImageSource:
        store = LayoutStore.open(self.path, ctx.oci_shared_blob_dir)
        return LayoutSource(self, store, refs.resolve(store, self.name))

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        traits = OCI_TRAITS
        if ctx.oci_accept_uncompressed_layers:
            import dataclasses

            traits = dataclasses.replace(OCI_TRAITS, layer_compression="preserve")
        return LayoutDestination(self, LayoutStore.create(self.path, ctx.oci_shared_blob_dir), self.name,
                                 traits, tidy_new_layout=True)

    def delete(self, ctx: SystemContext) -> None:
        store = LayoutStore.open(self.path, ctx.oci_shared_blob_dir)
        if self.name:
            refs.remove_name(store, self.name)
        else:
            desc = refs.resolve(store, None)
            refs.remove_digest(store, desc.digest)
        if store.shared:
            return  # other layouts may use any blob of a shared directory: only the name goes
        from imagetool.store.gc import collect

        collect(store)


def parse(text: str) -> OCIReference:
    path, name = split_path_and_ref(text, TRANSPORT_NAME)
    return OCIReference(path, name)


