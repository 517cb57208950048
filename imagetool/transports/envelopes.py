"""Signatures as transports store them: opaque envelopes, and sigstore attachment images.

An envelope is what `ImageSource.get_signatures` returns and `ImageDestination.put_signatures`
takes. It uses containers/image's on-disk form (so `dir:` images interoperate with skopeo):
a simple-signing signature is the raw OpenPGP message; a sigstore signature is the marker
`\\0sigstore-json\\n` followed by JSON `{"mimeType", "payload" (base64), "annotations"}`.

Registries and OCI layouts keep sigstore signatures as an image tagged `sha256-<hex>.sig` in
the same repository, one layer per signature; the helpers here read and build that image
through small callables so that they work for any transport.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import SignatureError
from imagetool.reference import DockerReference

SIGSTORE_MARKER = b"\x00sigstore-json\n"
SIGSTORE_PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
#: an attachment layer larger than this is not a signature we read
MAX_ATTACHMENT_LAYER = 4 << 20
MAX_ATTACHMENT_LAYERS = 256


@dataclass(frozen=True)
class SimpleSignature:
    """An OpenPGP message whose signed content is an "atomic container signature" payload."""

    blob: bytes


@dataclass(frozen=True)
class SigstoreSignature:
    """A cosign-style signature: payload bytes plus the annotations that sign them."""

    mime_type: str
    payload: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def signature_b64(self) -> str | None:
        return self.annotations.get(SIGSTORE_SIGNATURE_ANNOTATION)


Signature = SimpleSignature | SigstoreSignature


def serialize(sig: Signature) -> bytes:
    if isinstance(sig, SimpleSignature):
        return sig.blob
    body = {"mimeType": sig.mime_type, "payload": base64.b64encode(sig.payload).decode(),
            "annotations": dict(sig.annotations)}
    return SIGSTORE_MARKER + json.dumps(body, separators=(",", ":")).encode()


def parse(data: bytes) -> Signature:
    """Classify an envelope. OpenPGP packets never start with a zero byte, so the marker is unambiguous."""
    if not data:
        raise SignatureError("empty signature")
    if data[0] != 0:
        return SimpleSignature(bytes(data))
    if not data.startswith(SIGSTORE_MARKER):
        raise SignatureError("unknown signature format")
    try:
        body = json.loads(data[len(SIGSTORE_MARKER):])
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        mime = body["mimeType"]
        payload = base64.b64decode(body["payload"], validate=True)
        annotations = body.get("annotations") or {}
        if not isinstance(mime, str) or not isinstance(annotations, dict) or \
                not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise ValueError("unexpected field types")
    except (ValueError, KeyError, TypeError) as err:
        raise SignatureError(f"invalid sigstore signature envelope: {err}") from err
    return SigstoreSignature(mime, payload, annotations)


def split(envelopes: Sequence[bytes]) -> tuple[list[bytes], list[SigstoreSignature]]:
    """Simple-signing envelopes (kept as bytes) and sigstore signatures, for transports storing them apart."""
    simple: list[bytes] = []
    sigstore: list[SigstoreSignature] = []
    for env in envelopes:
        sig = parse(env)
        if isinstance(sig, SigstoreSignature):
            sigstore.append(sig)
        else:
            simple.append(env)
    return simple, sigstore


# -- attachment images (sha256-<hex>.sig)

def attachment_tag(manifest_digest: Digest) -> str:
    return f"{manifest_digest.algorithm}-{manifest_digest.hex}.sig"


GetTagged = Callable[[str], "tuple[bytes, str] | None"]
GetBlob = Callable[[Digest], bytes]
PutBlob = Callable[[bytes, str], Descriptor]
PutTagged = Callable[[str, bytes, str], object]


def read_attachments(manifest_digest: Digest, get_tagged: GetTagged, get_blob: GetBlob) -> list[SigstoreSignature]:
    """The sigstore signatures attached to an image; [] when it has no attachment image.

    Every layer of the attachment becomes a signature, whatever its media type: the verifier,
    not the reader, decides whether a layer is a signature it accepts.
    """
    found = get_tagged(attachment_tag(manifest_digest))
    if found is None:
        return []
    raw, _ = found
    try:
        doc = json.loads(raw)
        layers = doc.get("layers") or []
        if not isinstance(layers, list):
            raise ValueError("layers is not a list")
    except (ValueError, AttributeError) as err:
        raise SignatureError(f"invalid signature attachment {attachment_tag(manifest_digest)}: {err}") from err
    if len(layers) > MAX_ATTACHMENT_LAYERS:
        raise SignatureError(f"signature attachment has too many layers ({len(layers)})")
    out: list[SigstoreSignature] = []
    for layer in layers:
        try:
            digest = Digest.parse(layer["digest"])
            size = int(layer.get("size", 0))
            mt = str(layer.get("mediaType", ""))
            annotations = {str(k): str(v) for k, v in (layer.get("annotations") or {}).items()}
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise SignatureError(f"invalid layer in signature attachment: {err}") from err
        if size > MAX_ATTACHMENT_LAYER:
            raise SignatureError(f"signature attachment layer {digest} is too large ({size} bytes)")
        out.append(SigstoreSignature(mt, get_blob(digest), annotations))
    return out


def _config_for(layers: list[Descriptor]) -> bytes:
    config = {"architecture": "", "os": "", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in layers]}}
    return json.dumps(config, separators=(",", ":")).encode()


def write_attachments(manifest_digest: Digest, signatures: Sequence[SigstoreSignature], get_tagged: GetTagged,
                      put_blob: PutBlob, put_tagged: PutTagged) -> bool:
    """Add `signatures` to the image's attachment (creating it), skipping ones already there.

    Returns whether anything was written. Existing layers are kept as they are, so other
    tools' attachments survive.
    """
    existing_layers: list[dict[str, Any]] = []
    found = get_tagged(attachment_tag(manifest_digest))
    if found is not None:
        try:
            existing_layers = list(json.loads(found[0]).get("layers") or [])
        except (ValueError, AttributeError) as err:
            raise SignatureError(f"invalid signature attachment {attachment_tag(manifest_digest)}: {err}") from err
    have = {(layer.get("digest"), json.dumps(layer.get("annotations") or {}, sort_keys=True))
            for layer in existing_layers}
    layers = list(existing_layers)
    added = False
    for sig in signatures:
        desc = put_blob(sig.payload, sig.mime_type)
        key = (str(desc.digest), json.dumps(sig.annotations, sort_keys=True))
        if key in have:
            continue
        have.add(key)
        layers.append({"mediaType": sig.mime_type, "digest": str(desc.digest), "size": desc.size,
                       "annotations": dict(sig.annotations)})
        added = True
    if not added:
        return False
    descs = [Descriptor(str(x.get("mediaType", "")), Digest.parse(x["digest"]), int(x.get("size", 0)))
             for x in layers]
    config = put_blob(_config_for(descs), media.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                "config": {"mediaType": media.OCI_CONFIG, "digest": str(config.digest), "size": config.size},
                "layers": layers}
    put_tagged(attachment_tag(manifest_digest), json.dumps(manifest, separators=(",", ":")).encode(),
               media.OCI_MANIFEST)
    return True


# -- per-transport access to attachments
#
# A source that can hold attachments exposes `get_tagged_manifest(tag) -> (raw, type) | None`
# and `get_blob_bytes(digest, limit) -> bytes`; a destination exposes `get_tagged_manifest`,
# `put_blob_bytes(data, media_type) -> Descriptor` and `put_tagged_manifest(tag, raw, type)`.
# The docker transport and OCI layouts (including the local store) do.

def source_attachments(source: object, manifest_digest: Digest) -> list[SigstoreSignature] | None:
    """Sigstore signatures attached to `manifest_digest` in the source's repository.

    None means the source's transport cannot hold attachments at all (dir:, archives).
    """
    get_tagged = getattr(source, "get_tagged_manifest", None)
    get_bytes = getattr(source, "get_blob_bytes", None)
    if get_tagged is None or get_bytes is None:
        return None
    return read_attachments(manifest_digest, get_tagged, lambda d: get_bytes(d, MAX_ATTACHMENT_LAYER))


def store_attachments(destination: object, manifest_digest: Digest, signatures: Sequence[SigstoreSignature]) -> bool:
    """Write sigstore signatures as the attachment image of `manifest_digest` in the destination."""
    if not signatures:
        return False
    put_bytes = getattr(destination, "put_blob_bytes", None)
    put_tagged = getattr(destination, "put_tagged_manifest", None)
    get_tagged = getattr(destination, "get_tagged_manifest", None)
    if put_bytes is None or put_tagged is None:
        raise SignatureError("the destination cannot store sigstore signatures")
    return write_attachments(manifest_digest, signatures, get_tagged or (lambda tag: None), put_bytes, put_tagged)


# -- registries: lookaside (simple signing) and attachments (sigstore) together

def _attachments_enabled(config: object) -> bool:
    return getattr(config, "use_sigstore_attachments", False) is True


def registry_signatures(source: object, ref: DockerReference, manifest_digest: Digest,
                        registries_d: str | None) -> list[bytes]:
    """Every signature envelope a registry image has: lookaside simple signatures, then attachments."""
    from imagetool.registry import lookaside

    config = lookaside.RegistriesD.load(registries_d).for_reference(ref)
    out: list[bytes] = []
    if config.read_url:
        out += lookaside.read_signatures(config.read_url, ref, manifest_digest)
    if _attachments_enabled(config):
        out += [serialize(sig) for sig in source_attachments(source, manifest_digest) or []]
    return out


def registry_put_signatures(destination: object, ref: DockerReference, manifest_digest: Digest,
                            signatures: Sequence[bytes], registries_d: str | None) -> None:
    """Store envelopes for a registry image: simple ones in lookaside storage, sigstore ones attached.

    Both kinds are checked against registries.d before either is written.
    """
    from imagetool.registry import lookaside

    simple, sigstore = split(signatures)
    config = lookaside.RegistriesD.load(registries_d).for_reference(ref)
    if simple and not config.write_url:
        raise SignatureError(f"cannot store simple signatures for {ref.name}: no lookaside storage is "
                             "configured for it in registries.d")
    if sigstore and not _attachments_enabled(config):
        raise SignatureError(f"cannot store sigstore signatures for {ref.name}: registries.d does not "
                             "enable use-sigstore-attachments for it")
    if simple and config.write_url:
        lookaside.write_signatures(config.write_url, ref, manifest_digest, simple)
    if sigstore:
        store_attachments(destination, manifest_digest, sigstore)


# -- OCI 1.1 referrers (a registry's artifacts whose subject is the image)

#: cosign 2's artifactType for a signature stored as a referrer: one layer, the simplesigning payload
SIGSTORE_REFERRER_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def _registry_of(obj: object) -> tuple[object, str] | None:
    client, repo = getattr(obj, "client", None), getattr(obj, "repo", None)
    if client is None or not isinstance(repo, str) or not hasattr(client, "referrers"):
        return None
    return client, repo


def referrer_signatures(source: object, manifest_digest: Digest) -> list[SigstoreSignature]:
    """Sigstore signatures stored as referrers of the image (registries only; [] elsewhere)."""
    found = _registry_of(source)
    if found is None:
        return []
    from imagetool.registry import referrers

    client, repo = found
    out: list[SigstoreSignature] = []
    for desc in referrers.list_referrers(client, repo, manifest_digest, SIGSTORE_REFERRER_TYPE):  # type: ignore[arg-type]
        for layer, data in referrers.read_layers(client, repo, desc, MAX_ATTACHMENT_LAYER):  # type: ignore[arg-type]
            out.append(SigstoreSignature(layer.media_type, data, dict(layer.annotations)))
    return out


def store_referrer_signatures(destination: object, manifest: bytes, signatures: Sequence[bytes]) -> None:
    """Store sigstore envelopes as referrers of `manifest` (one artifact each, as cosign 2 does)."""
    found = _registry_of(destination)
    if found is None:
        raise SignatureError("only a registry destination can store signatures as referrers")
    from imagetool.manifest import guess_media_type
    from imagetool.registry import referrers

    client, repo = found
    subject = Descriptor(guess_media_type(manifest), Digest.of(manifest), len(manifest))
    for env in signatures:
        sig = parse(env)
        if not isinstance(sig, SigstoreSignature):
            raise SignatureError("only sigstore signatures can be stored as referrers")
        referrers.attach(client, repo, subject, SIGSTORE_REFERRER_TYPE,  # type: ignore[arg-type]
                         [referrers.Blob(sig.payload, sig.mime_type, dict(sig.annotations))])
