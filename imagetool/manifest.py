"""Manifest, Index and ImageConfig models.

`parse` keeps the raw bytes: a manifest's identity is the digest of those exact bytes,
so only manifests imagetool builds are ever serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from imagetool import gojson, media
from imagetool.descriptor import Descriptor, Platform, annotations_of
from imagetool.digest import Digest
from imagetool.errors import ManifestError, UnsupportedManifest


@dataclass(frozen=True)
class Manifest:
    """A single-image manifest (OCI or Docker schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""
    raw: bytes = b""

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def is_oci(self) -> bool:
        return self.media_type == media.OCI_MANIFEST

    @classmethod
    def build(cls, media_type: str, config: Descriptor, layers: Sequence[Descriptor],
              annotations: Mapping[str, str] | None = None, subject: Descriptor | None = None,
              artifact_type: str = "") -> Manifest:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if media_type == media.OCI_MANIFEST:
            if artifact_type:
                doc["artifactType"] = artifact_type
            doc["config"] = config.to_oci_dict()
            doc["layers"] = [layer.to_oci_dict() for layer in layers]
            if subject is not None:
                doc["subject"] = subject.to_oci_dict()
            if annotations:
                doc["annotations"] = dict(annotations)
        elif media_type == media.DOCKER_MANIFEST:
            doc["config"] = config.to_docker_dict()
            doc["layers"] = [layer.to_docker_dict() for layer in layers]
        else:
            raise UnsupportedManifest(f"cannot build a manifest of type {media_type}")
        return cls(media_type, config, tuple(layers), dict(annotations or {}), subject, artifact_type,
                   gojson.dumps(doc))

    def convert(self, to_oci: bool) -> Manifest:
        """The same image in the other format: media types change, blobs do not."""
        target = media.OCI_MANIFEST if to_oci else media.DOCKER_MANIFEST
        if target == self.media_type:
            return self
        if not to_oci and (self.subject is not None or not media.is_config(self.config.media_type)):
            raise UnsupportedManifest("an OCI artifact cannot be stored as a Docker schema 2 manifest")
        layers = []
        for layer in self.layers:
            if not media.is_layer(layer.media_type) or \
                    (not to_oci and media.layer_compression(layer.media_type) == "zstd"):
                raise UnsupportedManifest(f"layer media type {layer.media_type} has no "
                                          f"{'OCI' if to_oci else 'Docker'} equivalent")
            layers.append(layer.with_(media_type=media.convert_type(layer.media_type, to_oci),
                                      annotations=layer.annotations if to_oci else {}))
        config = self.config.with_(media_type=media.convert_type(self.config.media_type, to_oci),
                                   annotations=self.config.annotations if to_oci else {})
        return Manifest.build(target, config, layers, self.annotations if to_oci else None,
                              self.subject if to_oci else None)

    def with_layers(self, layers: Sequence[Descriptor], config: Descriptor | None = None) -> Manifest:
        return Manifest.build(self.media_type, config or self.config, layers, self.annotations,
                              self.subject, self.artifact_type)


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    raw: bytes = b""

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @classmethod
    def build(cls, media_type: str, manifests: Sequence[Descriptor],
              annotations: Mapping[str, str] | None = None, subject: Descriptor | None = None,
              include_media_type: bool = True) -> Index:
        doc: dict[str, Any] = {"schemaVersion": 2}
        if include_media_type:
            doc["mediaType"] = media_type
        if media_type == media.DOCKER_MANIFEST_LIST:
            doc["manifests"] = [m.to_docker_dict() for m in manifests]
        else:
            doc["manifests"] = [m.to_oci_dict() for m in manifests]
            if subject is not None:
                doc["subject"] = subject.to_oci_dict()
            if annotations:
                doc["annotations"] = dict(annotations)
        return cls(media_type, tuple(manifests), dict(annotations or {}), subject, gojson.dumps(doc))

    def convert(self, to_oci: bool, manifests: Sequence[Descriptor] | None = None) -> Index:
        target = media.OCI_INDEX if to_oci else media.DOCKER_MANIFEST_LIST
        entries = [m.with_(media_type=media.convert_type(m.media_type, to_oci))
                   for m in (manifests if manifests is not None else self.manifests)]
        return Index.build(target, entries, self.annotations if to_oci else None,
                           self.subject if to_oci else None)

    def find(self, digest: Digest) -> Descriptor | None:
        return next((m for m in self.manifests if m.digest == digest), None)


def _as_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = gojson.loads(raw, what)
    except ValueError as err:
        raise ManifestError(str(err)) from err
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return doc


def guess_media_type(raw: bytes) -> str:
    """The media type of manifest bytes, from their mediaType field or their shape."""
    doc = _as_object(raw, "manifest")
    return _guess(doc)


def _guess(doc: Mapping[str, Any]) -> str:
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if doc.get("schemaVersion") == 1:
        return media.DOCKER_SCHEMA1_SIGNED if "signatures" in doc else media.DOCKER_SCHEMA1
    if "manifests" in doc:
        return media.OCI_INDEX
    if "config" in doc and isinstance(doc["config"], Mapping):
        cmt = doc["config"].get("mediaType")
        return media.DOCKER_MANIFEST if cmt == media.DOCKER_CONFIG else media.OCI_MANIFEST
    raise UnsupportedManifest("cannot tell what kind of manifest this is")


def parse(raw: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse manifest bytes; schema 1 and unknown types are refused with a clear message."""
    doc = _as_object(raw, "manifest")
    declared = doc.get("mediaType")
    mt = declared if isinstance(declared, str) and declared else (media_type or _guess(doc))
    if mt in ("application/json", "text/plain") or not mt:
        mt = _guess(doc)
    if media.is_schema1(mt) or doc.get("schemaVersion") == 1:
        raise UnsupportedManifest("Docker schema 1 manifests are not supported; "
                                  "convert the image with a newer registry or tool first")
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    if media.is_index(mt):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("index has no manifests list")
        subject = doc.get("subject")
        return Index(mt, tuple(Descriptor.from_dict(m) for m in entries), annotations_of(doc, "index"),
                     Descriptor.from_dict(subject) if subject else None, raw)
    if media.is_manifest(mt):
        layers = doc.get("layers")
        if "config" not in doc or not isinstance(layers, list):
            raise ManifestError("manifest lacks config or layers")
        subject = doc.get("subject")
        return Manifest(mt, Descriptor.from_dict(doc["config"]),
                        tuple(Descriptor.from_dict(layer) for layer in layers), annotations_of(doc, "manifest"),
                        Descriptor.from_dict(subject) if subject else None,
                        str(doc.get("artifactType", "") or ""), raw)
    raise UnsupportedManifest(f"unsupported manifest media type {mt!r}")


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest:
    m = parse(raw, media_type)
    if not isinstance(m, Manifest):
        raise ManifestError("expected an image manifest, found an index")
    return m


#: the container config fields imagetool reads, and what each must be when present (null is allowed, as in Go)
_CONFIG_FIELDS = {"Env": "a list of strings", "Cmd": "a list of strings", "Entrypoint": "a list of strings",
                  "Shell": "a list of strings", "OnBuild": "a list of strings", "User": "a string",
                  "WorkingDir": "a string", "StopSignal": "a string", "Labels": "a map of strings",
                  "ExposedPorts": "an object", "Volumes": "an object"}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "a string":
        return isinstance(value, str)
    if kind == "a list of strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "a map of strings":
        return isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, Mapping)


@dataclass(frozen=True)
class ImageConfig:
    """An image configuration blob (OCI and Docker share the shape)."""

    doc: Mapping[str, Any]
    raw: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        return cls(_as_object(raw, "image config"), raw)

    @classmethod
    def build(cls, doc: Mapping[str, Any]) -> ImageConfig:
        return cls(doc, gojson.dumps(doc))

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def config(self) -> Mapping[str, Any]:
        """The container config section, its known fields checked: a mistyped one is a ManifestError."""
        config = self.doc.get("config") or {}
        if not isinstance(config, Mapping):
            raise ManifestError("image config: config is not an object")
        for key, kind in _CONFIG_FIELDS.items():
            value = config.get(key)
            if value is not None and not _is_kind(value, kind):
                raise ManifestError(f"image config: {key} is not {kind}")
        return config

    @property
    def platform(self) -> Platform:
        return Platform(architecture=str(self.doc.get("architecture", "")), os=str(self.doc.get("os", "")),
                        variant=str(self.doc.get("variant", "") or ""))

    @property
    def diff_ids(self) -> list[Digest]:
        rootfs = self.doc.get("rootfs") or {}
        try:
            return [Digest.parse(d) for d in rootfs.get("diff_ids") or []]
        except Exception as err:
            raise ManifestError(f"image config diff_ids: {err}") from err

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.doc.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, Mapping) for h in history):
            raise ManifestError("image config: history is not a list of objects")
        return [dict(h) for h in history]

    @property
    def created(self) -> str | None:
        created = self.doc.get("created")
        return created if isinstance(created, str) else None

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})
