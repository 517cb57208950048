"""docker-archive:PATH[:NAME:TAG] and docker-archive:PATH:@N — the `docker save` tar format.

The archive holds manifest.json ([{Config, RepoTags, Layers}]), `repositories`, the config as
`<hex>.json`, each layer uncompressed as `<diff-id hex>.tar`, and the legacy per-layer directories
(VERSION, json, a layer.tar symlink) that older `docker load` needs. It holds no registry
manifest: a source generates the Docker schema 2 manifest containers/image generates, byte for
byte, so both tools report the same Digest; its layer digests are the diff IDs and its layer
media type is, as there, the gzip one even though the bytes are a plain tar. A destination
writes a temp file beside PATH and renames it into place at commit; existing archives are
not modified. RepoTags lists NAME:TAG and then SystemContext.docker_archive_additional_tags
(skopeo's --additional-tag).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

from imagetool import compression, gojson, media
from imagetool.descriptor import Descriptor
from imagetool.digest import CHUNK, Digest, Readable, VerifyingReader
from imagetool.errors import (
    BlobUnknown,
    InvalidReference,
    LayoutError,
    ManifestError,
    ManifestUnknown,
    SizeMismatch,
    Unsupported,
    UnsupportedManifest,
)
from imagetool.manifest import Manifest, parse_manifest
from imagetool.reference import DockerReference
from imagetool.reference import parse as parse_reference
from imagetool.transports.base import (
    DestinationBase,
    DestinationTraits,
    ImageDestination,
    ImageSource,
    ReferenceBase,
    SourceBase,
    SystemContext,
)
from imagetool.transports.tarball import ArchiveReader, TarWriter

TRANSPORT_NAME = "docker-archive"
MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
CONFIG_MAX = 32 << 20
#: the fields of the image config that the top legacy layer's `json` repeats
LEGACY_CONFIG_FIELDS = ("architecture", "config", "container", "container_config", "created",
                        "docker_version", "os")

ARCHIVE_TRAITS = DestinationTraits(manifest_types=(media.DOCKER_MANIFEST,), layer_compression="decompress",
                                   supports_signatures=False, supports_index=False, thread_safe_put_blob=False)


class DockerArchiveReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, path: str, named: DockerReference | None, index: int | None) -> None:
        self.path = path
        self.named = named
        self.index = index

    def string_within_transport(self) -> str:
        if self.named is not None:
            return f"{self.path}:{self.named}"
        if self.index is not None:
            return f"{self.path}:@{self.index}"
        return self.path

    def docker_reference(self) -> DockerReference | None:
        return self.named

    def open_source(self, ctx: SystemContext) -> ImageSource:
        return ArchiveSource(self, ctx)

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        if self.index is not None:
            raise InvalidReference(f"docker-archive:{self.path}:@{self.index}: a source index cannot be "
                                   "written to")
        return ArchiveDestination(self, ctx.docker_archive_additional_tags)


@dataclass(frozen=True)
class _Layer:
    path: str
    size: int
    compressed: str | None


def archive_items(archive: ArchiveReader, path: str) -> list[dict[str, Any]]:
    """manifest.json's image entries, checked."""
    where = f"{path}: {MANIFEST_FILE}"
    if MANIFEST_FILE not in archive.members:
        raise LayoutError(f"{path}: not a docker archive (no {MANIFEST_FILE})")
    try:
        items = gojson.loads(archive.read_small(MANIFEST_FILE, CONFIG_MAX), MANIFEST_FILE)
    except ValueError as err:
        raise LayoutError(f"{path}: {err}") from err
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise LayoutError(f"{where}: not a list of images")
    for item in items:
        if not isinstance(item.get("Config"), str) or not isinstance(item.get("Layers"), list) or \
                not all(isinstance(p, str) for p in item["Layers"]) or \
                not all(isinstance(t, str) for t in item.get("RepoTags") or []):
            raise LayoutError(f"{where}: malformed image entry")
    return items


def list_tags(path: str, ctx: SystemContext) -> list[str]:
    """Every RepoTags name of every image in the archive (skopeo list-tags docker-archive:PATH)."""
    archive = ArchiveReader(path, ctx.temp_dir)
    try:
        tags = [tag for item in archive_items(archive, path) for tag in item.get("RepoTags") or []]
    finally:
        archive.close()
    try:
        return [str(parse_reference(tag)) for tag in tags]
    except InvalidReference as err:
        raise LayoutError(f"{path}: {MANIFEST_FILE}: {err}") from err


class ArchiveSource(SourceBase):
    """One image of an archive, with the manifest containers/image would generate for it."""

    def __init__(self, reference: DockerArchiveReference, ctx: SystemContext) -> None:
        self.reference = reference  # type: ignore[assignment]
        self.ref = reference
        self.archive = ArchiveReader(reference.path, ctx.temp_dir)
        try:
            item = self._choose(archive_items(self.archive, self.ref.path))
            self._load(item)
        except BaseException:
            self.archive.close()
            raise

    def _choose(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ref = self.ref
        if ref.index is not None:
            if ref.index >= len(items):
                raise ManifestUnknown(f"{ref.path}: invalid source index @{ref.index}, only {len(items)} "
                                      "images in the archive")
            return items[ref.index]
        if ref.named is None:
            if len(items) != 1:
                raise LayoutError(f"{ref.path}: exactly one image was expected, but found {len(items)} "
                                  "(choose one with :NAME:TAG or :@N)")
            return items[0]
        for item in items:
            for tag in item.get("RepoTags") or []:
                try:
                    if str(parse_reference(tag)) == str(ref.named):
                        return item
                except InvalidReference:
                    continue
        raise ManifestUnknown(f"{ref.path}: tag {ref.named} not found in the archive")

    def _load(self, item: dict[str, Any]) -> None:
        self.config_raw = self.archive.read_small(item["Config"], CONFIG_MAX)
        self.config_digest = Digest.of(self.config_raw)
        try:
            config = json.loads(self.config_raw)
            diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
        except (ValueError, KeyError, TypeError) as err:
            raise LayoutError(f"{self.ref.path}: image config {item['Config']}: no usable "
                              f"rootfs.diff_ids ({err})") from err
        paths = item["Layers"]
        if len(paths) != len(diff_ids):
            raise LayoutError(f"{self.ref.path}: inconsistent layer count: {len(paths)} in "
                              f"{MANIFEST_FILE}, {len(diff_ids)} in the config")
        self.layers: dict[Digest, _Layer] = {}
        used: dict[str, Digest] = {}
        for diff_id, path in zip(diff_ids, paths, strict=True):
            if diff_id in self.layers:
                continue  # the same layer twice: both entries hold the same bytes
            if used.setdefault(path, diff_id) != diff_id:
                raise LayoutError(f"{self.ref.path}: layer file {path} used for two different diff IDs")
            self.layers[diff_id] = self._measure(path)
        descs = [Descriptor(media.DOCKER_LAYER_GZIP, d, self.layers[d].size) for d in diff_ids]
        config_desc = Descriptor(media.DOCKER_CONFIG, self.config_digest, len(self.config_raw))
        self.manifest = Manifest.build(media.DOCKER_MANIFEST, config_desc, descs)

    def _measure(self, path: str) -> _Layer:
        """The uncompressed size of a layer file; a compressed one is read through once to learn it."""
        with self.archive.open(path) as raw:
            algorithm = compression.detect(raw.read(4))
        member = self.archive.resolve(path)
        if algorithm is None:
            return _Layer(path, member.size, None)
        size = 0
        with self.archive.open(path) as raw, compression.decompressor(raw, algorithm) as plain:  # type: ignore
            while chunk := plain.read(CHUNK):
                size += len(chunk)
        return _Layer(path, size, algorithm)

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        if instance is not None:
            raise Unsupported("docker-archive: an archive holds single images, not manifest lists")
        return self.manifest.raw, media.DOCKER_MANIFEST

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest == self.config_digest:
            return io.BytesIO(self.config_raw)
        layer = self.layers.get(desc.digest)
        if layer is None:
            raise BlobUnknown(f"blob {desc.digest} is not in {self.ref.path}")
        raw = self.archive.open(layer.path)
        return compression.decompressor(raw, layer.compressed) if layer.compressed else raw  # type: ignore

    def close(self) -> None:
        self.archive.close()


class ArchiveDestination(DestinationBase):
    """Writes one image into a new archive: a temp file beside PATH, renamed over it at commit."""

    traits = ARCHIVE_TRAITS

    def __init__(self, reference: DockerArchiveReference, additional_tags: Sequence[DockerReference] = ()) -> None:
        self.reference = reference  # type: ignore[assignment]
        self.ref = reference
        #: the names RepoTags and `repositories` list: the reference's own, then the additional ones
        self._names: list[DockerReference] = []
        for named in ([reference.named] if reference.named else []) + list(additional_tags):
            if named.tag is None or named.digest is not None:
                raise InvalidReference(f"docker-archive: additional tag {named} must be NAME:TAG")
            if all(str(named) != str(n) for n in self._names):
                self._names.append(named)
        path = Path(reference.path)
        if path.is_dir():
            raise LayoutError(f"{path}: is a directory, not an archive")
        if path.exists() and path.is_file() and path.stat().st_size != 0:
            raise LayoutError(f"{path}: exists; docker-archive does not support modifying existing archives")
        if not path.parent.is_dir() and str(path.parent):
            raise LayoutError(f"{path}: directory {path.parent} does not exist")
        self._path = path
        self._writer = TarWriter.beside(path)
        self._blobs: dict[Digest, int] = {}
        self._manifest: dict[str, Any] | None = None
        self._repositories: dict[str, dict[str, str]] = {}
        self._committed = False

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        return self._blobs.get(desc.digest) == desc.size

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        source: Readable = stream
        verifier: VerifyingReader | None = None
        if desc is not None:
            verifier = stream if isinstance(stream, VerifyingReader) and stream.expected == desc.digest \
                else VerifyingReader(stream, desc.digest, desc.size)
            source = verifier
        suffix = ".json" if is_config else ".tar"
        digest, size = self._writer.add_stream(source, lambda d: d.hex + suffix, skip_if=lambda d: d in self._blobs,
                                               verified_as=desc.digest if desc is not None else None)
        if desc is not None and (verifier is None or not verifier.verified or size != desc.size):
            raise SizeMismatch(desc.digest, desc.size, size)
        self._blobs[digest] = size
        return Descriptor(desc.media_type if desc else media.DOCKER_LAYER, digest, size)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None:
        if instance is not None:
            raise Unsupported("docker-archive: an archive holds single images, not manifest lists")
        if media_type != media.DOCKER_MANIFEST:
            raise UnsupportedManifest(f"docker-archive: needs a Docker schema 2 manifest, not {media_type}")
        manifest = parse_manifest(raw, media_type)
        for desc in (manifest.config, *manifest.layers):
            if desc.digest not in self._blobs:
                raise ManifestError(f"docker-archive: manifest names blob {desc.digest} that was not written")
        config_raw = self._writer.read_back(manifest.config.digest.hex + ".json", CONFIG_MAX)
        tags = [f"{n.name}:{n.tag}" for n in self._names]
        last_id = self._write_legacy_layers([d.digest for d in manifest.layers], config_raw)
        self._manifest = {"Config": manifest.config.digest.hex + ".json", "RepoTags": tags,
                          "Layers": [d.digest.hex + ".tar" for d in manifest.layers]}
        if last_id:
            for n in self._names:
                self._repositories.setdefault(n.name, {})[str(n.tag)] = last_id

    def _write_legacy_layers(self, layers: Sequence[Digest], config_raw: bytes) -> str:
        """The per-layer directories older `docker load` needs, with IDs made as containers/image makes them."""
        chain: Digest | None = None
        last_id = ""
        written: set[str] = set()
        for i, layer in enumerate(layers):
            legacy: dict[str, Any] = {}
            if last_id:
                legacy["parent"] = last_id
            if i == len(layers) - 1:
                try:
                    config = json.loads(config_raw)
                except ValueError as err:
                    raise ManifestError(f"image config: {err}") from err
                for field in LEGACY_CONFIG_FIELDS:
                    legacy[field] = config.get(field) if isinstance(config, dict) else None
            chain = layer if chain is None else Digest.of(f"{chain} {layer}".encode())
            # the ID hashes this layer's legacy config together with its chain ID
            layer_id = Digest.of(_go_map_json({**legacy, "layer_id": str(chain)})).hex
            legacy["id"] = layer_id
            if layer_id not in written:
                self._writer.add_symlink(f"{layer_id}/layer.tar", f"../{layer.hex}.tar")
                self._writer.add_bytes(f"{layer_id}/VERSION", b"1.0")
                self._writer.add_bytes(f"{layer_id}/json", _go_map_json(legacy))
                written.add(layer_id)
            last_id = layer_id
        return last_id

    def commit(self) -> None:
        if self._manifest is None:
            raise ManifestUnknown("commit before the manifest was written")
        self._writer.add_bytes(MANIFEST_FILE, gojson.dumps([self._manifest]))
        self._writer.add_bytes(REPOSITORIES_FILE, _repositories_json(self._repositories))
        self._writer.finish(self._path)
        self._committed = True

    def close(self) -> None:
        if not self._committed:
            self._writer.abort()


def _go_map_json(doc: dict[str, Any]) -> bytes:
    """A Go map marshals with its keys sorted (the values here are raw JSON, kept as they are)."""
    return gojson.dumps(dict(sorted(doc.items())))


def _repositories_json(repositories: dict[str, dict[str, str]]) -> bytes:
    return gojson.dumps({name: dict(sorted(tags.items())) for name, tags in sorted(repositories.items())})


def parse(text: str) -> DockerArchiveReference:
    """`PATH`, `PATH:NAME[:TAG]` (tag defaults to latest) or `PATH:@N` (the Nth image of a source)."""
    path, sep, rest = text.partition(":")
    if not path:
        raise InvalidReference(f"docker-archive: reference {text!r} has no path")
    if not sep or not rest:
        return DockerArchiveReference(path, None, None)
    if rest.startswith("@"):
        try:
            index = int(rest[1:])
        except ValueError as err:
            raise InvalidReference(f"docker-archive: invalid source index {rest!r}") from err
        if index < 0:
            raise InvalidReference(f"docker-archive: invalid source index {rest!r}")
        return DockerArchiveReference(path, None, index)
    named = parse_reference(rest)
    if named.digest is not None:
        raise InvalidReference(f"docker-archive: reference {rest!r} must be NAME:TAG, not a digest")
    return DockerArchiveReference(path, named.with_default_tag(), None)

