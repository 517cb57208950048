"""What a transport is: a reference parser, an image source and an image destination.

Call order for a destination (the copy pipeline keeps it):
    try_reuse_blob / put_blob for every layer and the config,
    put_manifest for each instance (instance=digest) and then the top-level manifest (instance=None),
    put_signatures, then commit().
Nothing a destination exposes by name (a tag, an index.json entry, a registry tag) may
point at content before commit(); a destination closed without commit() leaves at most
orphan blobs behind. put_blob MUST read its stream to EOF, and when it raises, MUST leave
no partial blob under the final name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, Sequence

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, Readable
from imagetool.errors import Unsupported
from imagetool.reference import DockerReference


@dataclass
class SystemContext:
    """Settings that reach transports from flags, environment and config files."""

    tls_verify: bool | None = None          # None: verify, except where registries.conf says insecure
    cert_dir: str | None = None
    creds: tuple[str, str] | None = None
    registry_token: str | None = None
    authfile: str | None = None
    no_creds: bool = False
    registries_d: str | None = None
    override_os: str | None = None
    override_arch: str | None = None
    override_variant: str | None = None
    tmpdir: str | None = None
    store: str | None = None                # local store root (None: the default)
    oci_shared_blob_dir: str | None = None  # oci: layouts keep their blobs here (skopeo's --shared-blob-dir)
    #: an oci: destination keeps uncompressed layers as they are (skopeo's --dest-oci-accept-uncompressed-layers)
    oci_accept_uncompressed_layers: bool = False
    #: a docker:// destination hashes a layer it recompresses before uploading it, and uploads it only if
    #: the registry lacks it (skopeo's --dest-precompute-digests)
    docker_precompute_digests: bool = False
    retry_times: int = 3
    retry_delay: float | None = None
    user_agent: str = "imagetool"
    #: more NAME:TAGs a docker-archive destination lists in RepoTags (skopeo's --additional-tag)
    docker_archive_additional_tags: tuple[DockerReference, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def temp_dir(self) -> str:
        """--tmpdir, $TMPDIR, else /var/tmp (big files), or the local store's tmp/ for an unprivileged user."""
        from imagetool.store import default_store_path
        from imagetool.tmpdirs import big_temp_dir

        return big_temp_dir(self.tmpdir, default_store_path(self.store), "/var/tmp") or "/var/tmp"


@dataclass(frozen=True)
class DestinationTraits:
    """What a destination can store, so a copy converts (manifest types, layer compression) only when needed."""

    #: manifest media types the destination can store, preferred first; empty means any
    manifest_types: tuple[str, ...] = ()
    #: "preserve", "compress" or "decompress": what the destination wants layers as
    layer_compression: str = "preserve"
    #: a layer typed as compressed that holds a plain tar (a docker-archive's) is compressed for real, even
    #: where layers are otherwise kept as they are: a registry serves what its type says
    compresses_plain_layers: bool = False
    supports_signatures: bool = False
    supports_index: bool = True
    #: copy may call put_blob from several threads at once
    thread_safe_put_blob: bool = True
    #: the destination must see the config before the layers (docker-archive needs it for names)
    needs_config_first: bool = False


class ImageReference(Protocol):
    """Where an image is (parse_image_name's result): a transport and what the transport makes of the rest."""

    transport_name: str

    def __str__(self) -> str: ...

    def string_within_transport(self) -> str: ...

    def docker_reference(self) -> DockerReference | None:
        """The named reference the image is known by, for signatures and policy identity."""

    def policy_scopes(self) -> list[str]:
        """Scopes to look up in policy.json for this transport, most specific first; "" is the default."""

    def open_source(self, ctx: SystemContext) -> ImageSource: ...

    def open_destination(self, ctx: SystemContext) -> ImageDestination: ...

    def delete(self, ctx: SystemContext) -> None: ...


class ImageSource(Protocol):
    reference: ImageReference

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        """Raw manifest bytes and media type: the top level, or an instance of an index."""

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the blob's bytes; the caller verifies them against `desc`."""

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        """Simple-signing signatures stored alongside the image (lookaside, signature-N files)."""

    def close(self) -> None: ...


class ImageDestination(Protocol):
    reference: ImageReference
    traits: DestinationTraits

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        """True when the destination already has this blob (or just mounted it) and it need not be sent."""

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        """Store a blob read to EOF; `desc` (when known) is checked, the returned descriptor is what was stored."""

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None: ...

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class SourceBase:
    """Defaults for optional source operations."""

    reference: ImageReference

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        return []

    def close(self) -> None:
        pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DestinationBase:
    """Defaults for optional destination operations."""

    reference: ImageReference
    traits = DestinationTraits()

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        return False

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None:
        if signatures:
            raise Unsupported(f"{self.reference.transport_name}: destination cannot store signatures")

    def close(self) -> None:
        pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReferenceBase:
    """Defaults for references that have no docker identity and cannot be deleted."""

    transport_name = ""

    def __str__(self) -> str:
        return f"{self.transport_name}:{self.string_within_transport()}"

    def string_within_transport(self) -> str:
        raise NotImplementedError

    def docker_reference(self) -> DockerReference | None:
        return None

    def policy_scopes(self) -> list[str]:
        return [""]

    def delete(self, ctx: SystemContext) -> None:
        raise Unsupported(f"deleting images is not supported for {self.transport_name}: references")
