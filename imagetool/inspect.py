"""`inspect`: what skopeo inspect reports about an image, from its manifest and config alone."""

from __future__ import annotations

import json
from typing import Any, Callable

from imagetool.copy.instances import choose_instance, get_instance, read_config
from imagetool.digest import Digest
from imagetool.errors import ManifestError, NotFound
from imagetool.govalues import NIL_MAP, NIL_POINTER, NIL_SLICE, GoTime, Struct
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
        try:
            chosen = choose_instance(parsed, ctx)
        except NotFound as err:
            raise NotFound(f"parsing manifest for image: choosing image instance: {err}") from err  # skopeo's words
        raw_i, mt_i = get_instance(src, chosen)
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


def _tags_beside(src: Any) -> Callable[[], list[str]]:
    """List the repository's tags on a thread of their own while the config (and an index's instance) is
    read: one round trip less. Started once the manifest was read, so the registry is known to answer (an
    unreachable one is not retried from two threads); a failure is raised where the tags are wanted."""
    import threading

    box: dict[str, Any] = {}

    def list_tags() -> None:
        try:
            box["tags"] = list(src.repo_tags())
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=list_tags, name="repo-tags", daemon=True)
    thread.start()

    def result() -> list[str]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["tags"]  # type: ignore[no-any-return]

    return result


def inspect_image(ref: ImageReference, ctx: SystemContext, *, tags: bool = True) -> dict[str, Any]:
    """skopeo inspect's fields, in its order (LayersData as newer skopeo versions add it)."""
    with _open(ref, ctx) as src:
        raw, mt = src.get_manifest()
        listed = _tags_beside(src) if tags and hasattr(src, "repo_tags") else lambda: []
        manifest = _image_manifest(src, raw, mt, ctx)
        config = read_config(src, manifest)
        repo_tags = listed()
    doc = config.doc if config else {}
    cfg = config.config if config else {}
    info: dict[str, Any] = {}
    named = ref.docker_reference()
    if named is not None:
        info["Name"] = named.name
    info["Digest"] = str(Digest.of(raw))
    info["RepoTags"] = repo_tags
    info["Created"] = GoTime(GoTime(config.created).rfc3339()) if config and config.created else None
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


def _opt(doc: dict[str, Any], key: str, kind: type, nil: Any) -> Any:
    value = doc.get(key)
    return value if isinstance(value, kind) else nil


def _time(value: Any) -> Any:
    return GoTime(GoTime(value).rfc3339()) if isinstance(value, str) and value else NIL_POINTER


def _set(value: Any) -> Any:
    """A map[string]struct{} (ExposedPorts, Volumes)."""
    return {k: Struct() for k in value} if isinstance(value, dict) else NIL_MAP


#: (Go field, JSON key, omitempty) of image-spec's v1.Image, ImageConfig, RootFS and History, in Go's order
_IMAGE = [("Created", "created", True), ("Author", "author", True), ("Architecture", "architecture", False),
          ("Variant", "variant", True), ("OS", "os", False), ("OSVersion", "os.version", True),
          ("OSFeatures", "os.features", True), ("Config", "config", True), ("RootFS", "rootfs", False),
          ("History", "history", True)]
_CONFIG = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
           "ArgsEscaped"]
_ROOTFS = [("Type", "type", False), ("DiffIDs", "diff_ids", False)]
_HISTORY = [("Created", "created", True), ("CreatedBy", "created_by", True), ("Author", "author", True),
            ("Comment", "comment", True), ("EmptyLayer", "empty_layer", True)]


def _struct(fields: list[tuple[str, str, bool]], values: dict[str, Any]) -> Struct:
    return Struct({go: values[go] for go, _, _ in fields}, {go: (key, omit) for go, key, omit in fields})


def config_view(doc: dict[str, Any]) -> Struct:
    """An image config as `inspect --config --format` templates see it in skopeo: image-spec's v1.Image
    struct (`{{.Architecture}}`, `{{.Config.Cmd}}`, `{{.RootFS.DiffIDs}}`), not the raw JSON keys."""
    cfg = _opt(doc, "config", dict, {})
    config = Struct({
        "User": _opt(cfg, "User", str, ""), "ExposedPorts": _set(cfg.get("ExposedPorts")),
        "Env": _opt(cfg, "Env", list, NIL_SLICE), "Entrypoint": _opt(cfg, "Entrypoint", list, NIL_SLICE),
        "Cmd": _opt(cfg, "Cmd", list, NIL_SLICE), "Volumes": _set(cfg.get("Volumes")),
        "WorkingDir": _opt(cfg, "WorkingDir", str, ""), "Labels": _opt(cfg, "Labels", dict, NIL_MAP),
        "StopSignal": _opt(cfg, "StopSignal", str, ""), "ArgsEscaped": _opt(cfg, "ArgsEscaped", bool, False),
    }, {name: (name, True) for name in _CONFIG})
    rootfs = _opt(doc, "rootfs", dict, {})
    history = [_struct(_HISTORY, {
        "Created": _time(h.get("created")), "CreatedBy": _opt(h, "created_by", str, ""),
        "Author": _opt(h, "author", str, ""), "Comment": _opt(h, "comment", str, ""),
        "EmptyLayer": _opt(h, "empty_layer", bool, False)})
        for h in _opt(doc, "history", list, []) if isinstance(h, dict)]
    return _struct(_IMAGE, {
        "Created": _time(doc.get("created")), "Author": _opt(doc, "author", str, ""),
        "Architecture": _opt(doc, "architecture", str, ""), "Variant": _opt(doc, "variant", str, ""),
        "OS": _opt(doc, "os", str, ""), "OSVersion": _opt(doc, "os.version", str, ""),
        "OSFeatures": _opt(doc, "os.features", list, NIL_SLICE), "Config": config,
        "RootFS": _struct(_ROOTFS, {"Type": _opt(rootfs, "type", str, ""),
                                    "DiffIDs": _opt(rootfs, "diff_ids", list, NIL_SLICE)}),
        "History": history if "history" in doc else NIL_SLICE,
    })


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
