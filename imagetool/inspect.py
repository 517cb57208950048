"""`inspect`: what skopeo inspect reports about an image, from its manifest and config alone."""

from __future__ import annotations

import json
from typing import Any

from imagetool.copy.multiple import choose_instance, get_instance
from imagetool.copy.single import read_config
from imagetool.digest import Digest
from imagetool.errors import ManifestError
from imagetool.gotemplate import NIL_MAP, NIL_POINTER, NIL_SLICE, GoTime, Struct
from imagetool.manifest import Index, Manifest, parse, parse_manifest
from imagetool.transports.base import ImageReference, ImageSource, SystemContext


def raw_manifest(ref: ImageReference, ctx: SystemContext) -> bytes:
    with _open(ref, ctx) as src:
        raw: bytes = src.get_manifest()[0]
        return raw


def _open(ref: ImageReference, ctx: SystemContext) -> Any:
    src = ref.open_source(ctx)
    return src if hasattr(src, "__enter__") else _Closing(src)


class _Closing:
    def __init__(self, src: ImageSource) -> None:
        self.src = src

    def __enter__(self) -> ImageSource:
        return self.src

    def __exit__(self, *exc: object) -> None:
        self.src.close()


def _image_manifest(src: ImageSource, raw: bytes, mt: str, ctx: SystemContext) -> Manifest:
    parsed = parse(raw, mt)
    if isinstance(parsed, Index):
        raw_i, mt_i = get_instance(src, choose_instance(parsed, ctx))
        return parse_manifest(raw_i, mt_i)
    return parsed


def image_config(ref: ImageReference, ctx: SystemContext) -> bytes:
    """The raw config blob of the image (the system's instance of an index)."""
    with _open(ref, ctx) as src:
        raw, mt = src.get_manifest()
        manifest = _image_manifest(src, raw, mt, ctx)
        config = read_config(src, manifest)
        if config is None:
            raise ManifestError(f"{ref}: the image has no image configuration ({manifest.config.media_type})")
        return config.raw


def inspect_image(ref: ImageReference, ctx: SystemContext, *, tags: bool = True) -> dict[str, Any]:
    """skopeo inspect's fields, in its order (LayersData as newer skopeo versions add it)."""
    with _open(ref, ctx) as src:
        raw, mt = src.get_manifest()
        manifest = _image_manifest(src, raw, mt, ctx)
        config = read_config(src, manifest)
        repo_tags = list(src.repo_tags()) if tags and hasattr(src, "repo_tags") else []
    doc = config.doc if config else {}
    cfg = config.config if config else {}
    info: dict[str, Any] = {}
    named = ref.docker_reference()
    if named is not None:
        info["Name"] = named.name
    info["Digest"] = str(Digest.of(raw))
    info["RepoTags"] = repo_tags
    info["Created"] = GoTime(config.created) if config and config.created else None
    info["DockerVersion"] = doc.get("docker_version", "")
    info["Labels"] = cfg.get("Labels") or None
    info["Architecture"] = doc.get("architecture", "")
    if doc.get("variant"):
        info["Variant"] = doc["variant"]
    info["Os"] = doc.get("os", "")
    info["Layers"] = [str(layer.digest) for layer in manifest.layers]
    info["LayersData"] = [{"MIMEType": layer.media_type, "Digest": str(layer.digest), "Size": layer.size,
                           "Annotations": dict(layer.annotations) or None} for layer in manifest.layers]
    info["Env"] = cfg.get("Env") or None
    return info


def template_view(info: dict[str, Any]) -> dict[str, Any]:
    """`info` as a --format template sees skopeo's struct: Name always there, typed nils print as Go's."""
    nils = {"Created": NIL_POINTER, "Labels": NIL_MAP, "Env": NIL_SLICE, "RepoTags": NIL_SLICE}
    return Struct({"Name": "", **{k: nils.get(k) if v is None else v for k, v in info.items()}})


def manifest_digest(path: str) -> Digest:
    """The digest of a manifest file (schema 1, signed over a payload, is refused rather than mis-hashed)."""
    with open(path, "rb") as f:
        raw = f.read(64 << 20)
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        parse(raw)  # raises the schema 1 error
    return Digest.of(raw)


def pretty(obj: Any) -> str:
    """JSON as skopeo prints it: four-space indent, HTML-safe escapes."""
    text = json.dumps(obj, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
