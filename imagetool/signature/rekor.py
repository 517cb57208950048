"""Rekor SETs (`dev.sigstore.cosign/bundle`): offline proof that a signature was logged, and when.

The SET is `{"SignedEntryTimestamp": b64, "Payload": {"body", "integratedTime", "logIndex",
"logID"}}`; the log key signs (ECDSA, SHA-256) the RFC 8785 canonical form of Payload. The
body is a `hashedrekord` 0.0.1 entry naming the signature bytes, the signer's key or
certificate (PEM) and the SHA-256 of the payload; each must equal what the image carries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from imagetool.errors import SignatureError
from imagetool.signature import rejections as why
from imagetool.signature.pem import single_block

HASHEDREKORD_VERSION = "0.0.1"


def _strict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate field {k!r}")
        out[k] = v
    return out


def _loads(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data, object_pairs_hook=_strict, parse_float=_no_float,
                          parse_constant=_no_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise SignatureError(why.invalid_set(f"{what}: {err}")) from err


def _no_float(text: str) -> Any:
    raise ValueError(f"unexpected number {text}")


def _exact(obj: Any, fields: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != fields:
        raise SignatureError(why.invalid_set(f"{what} must be an object with exactly the fields "
                                             f"{', '.join(sorted(fields))}"))
    return obj


def _get(obj: Any, path: str) -> Any:
    for name in path.split("."):
        if not isinstance(obj, dict) or name not in obj:
            raise SignatureError(why.invalid_set(f"hashedrekord has no {path!r} field"))
        obj = obj[name]
    return obj


def b64decode(text: Any, what: str) -> bytes:
    """Standard base64, line breaks ignored (as Go's decoder does)."""
    if not isinstance(text, str):
        raise SignatureError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError) as err:
        raise SignatureError(f"{what} is not valid base64") from err


def canonical(obj: Any) -> bytes:
    """RFC 8785 form of a JSON value made of objects, arrays, strings, integers, booleans and null."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_set(rekor_keys: Sequence[ec.EllipticCurvePublicKey], set_json: bytes, key_or_cert_pem: bytes,
               signature_b64: str, payload: bytes) -> int:
    """The SET's integratedTime (Unix seconds) if a trusted log key signed it and it records this signature."""
    doc = _exact(_loads(set_json, "SET"), {"SignedEntryTimestamp", "Payload"}, "the SET")
    set_signature = b64decode(doc["SignedEntryTimestamp"], "SignedEntryTimestamp")
    entry = _exact(doc["Payload"], {"body", "integratedTime", "logIndex", "logID"}, "the SET payload")
    signed = canonical(entry)
    for key in rekor_keys:
        try:
            key.verify(set_signature, signed, ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        raise SignatureError(why.SET_NOT_SIGNED)
    integrated = entry["integratedTime"]
    if not isinstance(integrated, int) or isinstance(integrated, bool) or not isinstance(entry["logIndex"], int) \
            or not isinstance(entry["logID"], str):
        raise SignatureError(why.invalid_set("integratedTime, logIndex or logID has the wrong type"))
    body = _loads(b64decode(entry["body"], "the SET body"), "the SET body")
    if _get(body, "apiVersion") != HASHEDREKORD_VERSION or _get(body, "kind") != "hashedrekord":
        raise SignatureError(why.invalid_set(f"unsupported entry {body.get('kind')!r} "
                                             f"version {body.get('apiVersion')!r}"))
    logged_key = b64decode(_get(body, "spec.signature.publicKey.content"), "the SET's publicKey")
    if single_block(logged_key, "the public key in the Rekor SET") != \
            single_block(key_or_cert_pem, "the signer's public key or certificate"):
        raise SignatureError(why.SET_KEY_MISMATCH)
    logged_signature = b64decode(_get(body, "spec.signature.content"), "the SET's signature")
    if logged_signature != b64decode(signature_b64, "the signature annotation"):
        raise SignatureError(why.SET_SIGNATURE_MISMATCH)
    if _get(body, "spec.data.hash.algorithm") != "sha256":
        raise SignatureError(why.invalid_set(f"unsupported hash {_get(body, 'spec.data.hash.algorithm')!r}"))
    value = _get(body, "spec.data.hash.value")
    if not isinstance(value, str) or value.lower() != hashlib.sha256(payload).hexdigest():
        raise SignatureError(why.SET_PAYLOAD_MISMATCH)
    return integrated
