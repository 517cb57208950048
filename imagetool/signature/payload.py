"""The signed claim both signature kinds carry: "this manifest digest is image R".

Simple signing calls it an "atomic container signature", cosign a "cosign container image
signature"; the JSON shape is the same. Parsing is strict about the critical section, as
containers/image is, because anything unrecognised there could change what is being claimed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from imagetool import __version__
from imagetool.digest import Digest
from imagetool.errors import ImagetoolError, SignatureError
from imagetool.reference import DockerReference
from imagetool.reference import parse as parse_reference

SIMPLE_TYPE = "atomic container signature"
COSIGN_TYPE = "cosign container image signature"


@dataclass(frozen=True)
class Payload:
    """A simple-signing payload: the identity and manifest digest a signature vouches for."""

    docker_reference: str
    manifest_digest: Digest
    type: str
    optional: dict[str, Any] | None = None

    def identity(self) -> DockerReference:
        """The claimed identity, normalised the way docker reads names."""
        try:
            return parse_reference(self.docker_reference)
        except ImagetoolError as err:
            raise SignatureError(f"signature claims an invalid docker reference "
                                 f"{self.docker_reference!r}: {err}") from err


def make(manifest_digest: Digest, identity: DockerReference | str, kind: str) -> bytes:
    """The payload bytes to sign; `identity` is written as given (a string is not normalised)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": str(identity)},
            "image": {"docker-manifest-digest": str(manifest_digest)},
            "type": kind,
        },
        "optional": {"creator": f"imagetool {__version__}", "timestamp": int(time.time())},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _only_keys(obj: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SignatureError(f"signature payload: {where} is not a JSON object")
    if set(obj) != keys:
        raise SignatureError(f"signature payload: {where} has fields {sorted(obj)}, expected {sorted(keys)}")
    return obj


def parse(data: bytes, kind: str) -> Payload:
    """Parse and check a payload of the given type; unknown critical fields are an error."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise SignatureError(f"signature payload is not JSON: {err}") from err
    if not isinstance(doc, dict) or "critical" not in doc or not set(doc) <= {"critical", "optional"}:
        raise SignatureError("signature payload must be an object with critical and optional fields only")
    critical = _only_keys(doc["critical"], "critical", {"identity", "image", "type"})
    if critical["type"] != kind:
        raise SignatureError(f"signature payload has type {critical['type']!r}, expected {kind!r}")
    identity = _only_keys(critical["identity"], "critical.identity", {"docker-reference"})
    image = _only_keys(critical["image"], "critical.image", {"docker-manifest-digest"})
    ref, digest_text = identity["docker-reference"], image["docker-manifest-digest"]
    if not isinstance(ref, str) or not isinstance(digest_text, str):
        raise SignatureError("signature payload: identity and digest must be strings")
    try:
        digest = Digest.parse(digest_text)
    except ImagetoolError as err:
        raise SignatureError(f"signature payload: invalid manifest digest: {err}") from err
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise SignatureError("signature payload: optional is not a JSON object")
    return Payload(ref, digest, kind, optional)


def manifest_matches(manifest: bytes, digest: Digest) -> bool:
    """Whether `manifest` is what `digest` names. Schema 1 manifests (signed JWS) are refused."""
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        return False
    try:
        return Digest.of(manifest, digest.algorithm) == digest
    except ImagetoolError:
        return False
