"""docker://NAME[:TAG|@DIGEST] — an image in a registry, over registry.Client.

Names follow skopeo: `docker://busybox` is docker.io/library/busybox:latest; a reference
with both a tag and a digest is refused. The destination skips blobs the repository has
(HEAD), mounts blobs the blob-location cache has seen in another repository of the same
registry, and names the image (PUT by tag) only at commit. A small blob is checked for by
asking to mount it from the repository itself: one POST answers "there" (201) or opens the
session its upload then uses (202), where HEAD, POST and PUT took three requests. A blob this
process already stored or found in the repository is not checked for again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, BinaryIO, Sequence

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, Readable, close_quietly, read_full
from imagetool.errors import (DigestMismatch, InvalidReference, ManifestError, ManifestUnknown, RegistryError,
                              UnsupportedManifest)
from imagetool.reference import DockerReference, policy_namespaces
from imagetool.reference import parse as parse_reference
from imagetool.registry import locations
from imagetool.transports.base import (
    DestinationBase,
    DestinationTraits,
    ImageDestination,
    ImageReference,
    ImageSource,
    ReferenceBase,
    SourceBase,
    SystemContext,
)

if TYPE_CHECKING:  # the client (http.client, ssl) loads when a registry is talked to, not when a name is parsed
    from imagetool.registry.client import Client, ClientOptions

TRANSPORT_NAME = "docker"
DOCKER_TRAITS = DestinationTraits(
    manifest_types=(media.OCI_MANIFEST, media.DOCKER_MANIFEST, media.OCI_INDEX, media.DOCKER_MANIFEST_LIST),
    layer_compression="preserve",
    compresses_plain_layers=True,
    supports_signatures=True,
    supports_index=True,
    thread_safe_put_blob=True,
)


def client_options(ctx: SystemContext) -> ClientOptions:
    from imagetool.registry.client import ClientOptions

    return ClientOptions(tls_verify=ctx.tls_verify, cert_dir=ctx.cert_dir, creds=ctx.creds,
                         registry_token=ctx.registry_token, authfile=ctx.authfile, no_creds=ctx.no_creds,
                         retry_times=ctx.retry_times, retry_delay=ctx.retry_delay, user_agent=ctx.user_agent)


def make_client(ref: DockerReference, ctx: SystemContext) -> Client:
    from imagetool.registry.client import Client

    return Client(ref.domain, client_options(ctx), repo=ref.path)


#: config blobs up to this size are kept in memory by a source: a copy reads the config twice
SMALL_CONFIG = 1 << 20
#: blobs up to this size are checked for with a mount from their own repository (the upload they then need is
#: one PUT): a registry that ignores mounts answers 202 even for a blob it has, and gets a small blob again
CHECK_BY_MOUNT_MAX = 1 << 20

#: (host, repository, digest) of blobs this process stored or found in a repository, or read a manifest of that
#: repository naming (a registry keeps what a manifest of a repository names: it refuses the manifest
#: otherwise): asked for again (the platforms of an index sharing a layer, the images of a sync sharing a
#: base, a no-op copy back into the same repository), they are not checked again
_present: set[tuple[str, str, str]] = set()
_present_lock = threading.Lock()


def _seen_present(host: str, repo: str, digest: str) -> None:
    with _present_lock:
        _present.add((host, repo, digest))


def _record_blobs(host: str, repo: str, raw: bytes, mt: str) -> Digest | None:
    """Remember that the blobs a manifest names live in `repo` (for later cross-repo mounts).

    Returns the manifest's config digest.
    """
    if not media.is_manifest(mt):
        return None
    from imagetool.manifest import parse

    try:
        manifest = parse(raw, mt)
    except ManifestError:
        return None
    cache = locations.shared()
    for desc in (manifest.config, *manifest.layers):  # type: ignore[union-attr]
        cache.record(host, repo, str(desc.digest))
        if not media.is_nondistributable(desc.media_type):  # those may live elsewhere (their URLs)
            _seen_present(host, repo, str(desc.digest))
    return manifest.config.digest  # type: ignore[union-attr]


class _Repository:
    """One repository of a registry: its client, and access by tag and digest (signature attachments)."""

    def __init__(self, reference: DockerImageReference, ctx: SystemContext) -> None:
        self.reference: ImageReference = reference
        self.ref = reference.ref
        self.repo = self.ref.path
        self.client = make_client(self.ref, ctx)
        self.registries_d = ctx.registries_d

    def get_tagged_manifest(self, tag: str) -> tuple[bytes, str] | None:
        """The manifest a tag in this repository names, or None when the tag does not exist."""
        try:
            return self.client.get_manifest(self.repo, tag)
        except ManifestUnknown:
            return None

    def get_blob_bytes(self, digest: Digest, limit: int = 4 << 20) -> bytes:
        """A small blob of this repository, read whole and verified (hashed at once, as Digest.of hashes a
        manifest: a config needs no streaming hasher)."""
        stream = self.client.get_blob(self.repo, digest)
        try:
            data = read_full(stream, limit + 1)
        finally:
            close_quietly(stream)
        if len(data) > limit:
            raise RegistryError(f"blob {digest.short} is larger than {limit} bytes")
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        return data


class DockerSource(_Repository, SourceBase):
    def __init__(self, reference: DockerImageReference, ctx: SystemContext) -> None:
        super().__init__(reference, ctx)
        self._top_digest: Digest | None = None
        self._configs: dict[Digest, bytes | None] = {}  # config digests seen; their bytes once read

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        key = str(instance or self.ref.digest or self.ref.tag)
        raw, mt = self.client.get_manifest(self.repo, key)
        config = _record_blobs(self.client.host, self.repo, raw, mt)
        if config is not None:
            self._configs.setdefault(config, None)
        if instance is None:
            self._top_digest = Digest.of(raw)
        return raw, mt

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        """Lookaside and attached signatures, wherever registries.d says this repository keeps them."""
        if instance is None and self._top_digest is None:
            self.get_manifest()
        digest = instance or self._top_digest
        assert digest is not None
        from imagetool.transports import envelopes  # signatures: copies read them, inspect does not

        return envelopes.registry_signatures(self, self.ref, digest, self.registries_d)

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest in self._configs and 0 <= desc.size <= SMALL_CONFIG:
            import io

            data = self._configs[desc.digest]
            if data is None:  # read once, verified; the copy asks again when it writes the config
                data = self._configs[desc.digest] = self.get_blob_bytes(desc.digest, SMALL_CONFIG)
            return io.BytesIO(data)
        return self.client.get_blob(self.repo, desc.digest, desc.size)  # type: ignore[return-value]

    def repo_tags(self) -> list[str]:
        return self.client.list_tags(self.repo)

    def close(self) -> None:
        locations.shared().save()


class DockerDestination(_Repository, DestinationBase):
    traits = DOCKER_TRAITS

    def __init__(self, reference: DockerImageReference, ctx: SystemContext) -> None:
        super().__init__(reference, ctx)
        self._top: tuple[bytes, str] | None = None
        self.mounted = 0
        self.uploaded = 0
        self.precompute = ctx.docker_precompute_digests
        self.temp_dir = ctx.temp_dir if self.precompute else None
        self._sessions: dict[Digest, str] = {}  # upload sessions a check opened, for put_blob
        self._sessions_lock = threading.Lock()

    @property
    def blob_scope(self) -> object:
        """Copies of one blob into this registry wait for each other (copy/blob.py): a later one mounts it."""
        return ("docker", self.client.host)

    def holds_blob(self, desc: Descriptor) -> bool:
        """Known without a request: this process stored or found the blob there, or read a manifest naming it."""
        return (self.client.host, self.repo, str(desc.digest)) in _present

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        host, digest = self.client.host, str(desc.digest)
        if self.holds_blob(desc):
            return True
        cache = locations.shared()
        known = cache.candidates(host, digest)
        others = [repo for repo in known if repo != self.repo]
        # seen only in other repositories of this registry (a same-registry copy, a sync's second image):
        # mounted straight away, where a HEAD first would only find it missing
        if others and self.repo not in known and self._mount(desc, others):
            return True
        if self.repo not in known and 0 <= desc.size <= CHECK_BY_MOUNT_MAX:
            there = self._check_by_mount(desc)
            if there is not None:
                if there:
                    cache.record(host, self.repo, digest)
                    _seen_present(host, self.repo, digest)
                return there
        size = self.client.head_blob(self.repo, desc.digest)
        if size is not None and (size < 0 or size == desc.size):
            cache.record(host, self.repo, digest)
            _seen_present(host, self.repo, digest)
            return True
        return self.repo in known and self._mount(desc, others)

    def _check_by_mount(self, desc: Descriptor) -> bool | None:
        """True: the repository has the blob; False: it does not, and the session for its upload is open;
        None: the registry refused the request (then HEAD decides)."""
        try:
            location = self.client.open_upload(self.repo, desc.digest, self.repo)
        except RegistryError:
            return None
        if location is None:
            return True
        with self._sessions_lock:
            stale = self._sessions.pop(desc.digest, None)
            self._sessions[desc.digest] = location
        if stale is not None:
            self.client.cancel_upload(stale, self.repo)
        return False

    def _mount(self, desc: Descriptor, repos: list[str]) -> bool:
        for other in repos:
            try:
                if self.client.mount_blob(self.repo, desc.digest, other):
                    locations.shared().record(self.client.host, self.repo, str(desc.digest))
                    _seen_present(self.client.host, self.repo, str(desc.digest))
                    self.mounted += 1
                    return True
            except RegistryError:
                continue
        return False

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        if desc is None and self.precompute:
            return self._put_precomputed(stream)
        from imagetool.registry.upload import BlobUploader  # with its thread pool: not for inspect and reads

        with self._sessions_lock:
            location = self._sessions.pop(desc.digest, None) if desc is not None else None
        uploader = BlobUploader(self.client, self.repo, location)
        digest, size = uploader.upload(stream, desc.digest if desc else None, desc.size if desc else None)
        locations.shared().record(self.client.host, self.repo, str(digest))
        _seen_present(self.client.host, self.repo, str(digest))
        self.uploaded += 1
        return Descriptor(desc.media_type if desc else "application/octet-stream", digest, size)

    def _put_precomputed(self, stream: Readable) -> Descriptor:
        """A blob whose digest is known only once written (a recompressed layer): spooled to a temp file to
        learn it, then uploaded unless the registry (or another of its repositories) already has it."""
        import tempfile

        from imagetool.digest import CHUNK, DigestingWriter

        with tempfile.TemporaryFile(dir=self.temp_dir) as spool:
            sink = DigestingWriter(spool)
            while chunk := stream.read(CHUNK):
                sink.write(chunk)
            desc = Descriptor("application/octet-stream", sink.digest(), sink.size)
            if self.try_reuse_blob(desc):
                return desc
            spool.seek(0)
            return self.put_blob(spool, desc)  # type: ignore[arg-type]

    def put_blob_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        """Store a small blob held in memory (signature payloads, attachment configs)."""
        import io

        desc = Descriptor(media_type, Digest.of(data), len(data))
        if self.client.head_blob(self.repo, desc.digest) == desc.size:
            return desc
        return self.put_blob(io.BytesIO(data), desc)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None:
        if media_type not in self.traits.manifest_types:
            raise UnsupportedManifest(f"docker: cannot store manifest type {media_type}")
        if instance is not None:
            self.client.put_manifest(self.repo, str(instance), raw, media_type)
            return
        if self.ref.digest is not None and Digest.of(raw, self.ref.digest.algorithm) != self.ref.digest:
            raise UnsupportedManifest(f"manifest digest {Digest.of(raw)} does not match the reference's "
                                      f"{self.ref.digest}")
        self._top = (raw, media_type)

    def put_tagged_manifest(self, tag: str, raw: bytes, media_type: str) -> Digest:
        """Name a manifest by tag in this repository right away (attachments, not the image itself)."""
        return self.client.put_manifest(self.repo, tag, raw, media_type)

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None:
        """Called before commit, so a refusal (no storage configured) leaves the image unnamed."""
        if instance is None and self._top is None:
            raise ManifestUnknown("signatures before the manifest was written")
        digest = instance or Digest.of(self._top[0])  # type: ignore[index]
        from imagetool.transports import envelopes

        envelopes.registry_put_signatures(self, self.ref, digest, signatures, self.registries_d)

    def put_referrer_signatures(self, manifest: bytes, signatures: Sequence[bytes]) -> None:
        """Sigstore signatures stored as OCI 1.1 referrers of `manifest` (before commit, as the others)."""
        from imagetool.transports import envelopes

        envelopes.store_referrer_signatures(self, manifest, signatures)

    def commit(self) -> None:
        if self._top is None:
            raise ManifestUnknown("commit before the manifest was written")
        raw, mt = self._top
        key = str(self.ref.digest) if self.ref.digest else str(self.ref.tag)
        self.client.put_manifest(self.repo, key, raw, mt)

    def close(self) -> None:
        with self._sessions_lock:
            left, self._sessions = list(self._sessions.values()), {}
        for location in left:  # checked for, then never uploaded (the copy failed)
            self.client.cancel_upload(location, self.repo)
        locations.shared().save()


class DockerImageReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, ref: DockerReference) -> None:
        self.ref = ref

    def string_within_transport(self) -> str:
        return "//" + self.ref.familiar()

    def docker_reference(self) -> DockerReference | None:
        return self.ref

    def policy_scopes(self) -> list[str]:
        return policy_namespaces(self.ref) + [""]

    def open_source(self, ctx: SystemContext) -> ImageSource:
        return DockerSource(self, ctx)

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        return DockerDestination(self, ctx)

    def delete(self, ctx: SystemContext) -> None:
        """Delete the manifest the reference names (by digest: a tag is resolved first)."""
        client = make_client(self.ref, ctx)
        digest = self.ref.digest
        if digest is None:
            found = client.head_manifest(self.ref.path, str(self.ref.tag))
            if found is None:
                raise ManifestUnknown(f"{self.ref.familiar()}: manifest unknown")
            digest = found.digest
        client.delete_manifest(self.ref.path, digest)

    def repository(self) -> DockerImageReference:
        return DockerImageReference(self.ref.repository())


def parse(text: str) -> DockerImageReference:
    """`//NAME[:TAG|@DIGEST]` (the part after `docker:`)."""
    if not text.startswith("//"):
        raise InvalidReference(f"docker: reference {text!r} does not start with //")
    ref = parse_reference(text[2:])
    if ref.tag and ref.digest:
        raise InvalidReference(f"docker: reference {text[2:]!r} has both a tag and a digest (not supported)")
    return DockerImageReference(ref.with_default_tag())


def parse_repository(text: str) -> DockerReference:
    """`docker://NAME` without tag or digest (list-tags, sync destinations)."""
    body = text.removeprefix("docker:")
    if not body.startswith("//"):
        raise InvalidReference(f"{text!r} is not a docker:// reference")
    ref = parse_reference(body[2:])
    if not ref.is_name_only:
        raise InvalidReference(f"{text!r}: expected a repository without tag or digest")
    return ref
