"""Sigstore (cosign) key signatures: ECDSA-P256/SHA-256 over a simplesigning payload.

The signature travels base64-encoded (ASN.1 DER) in the `dev.cosignproject.cosign/signature`
annotation beside the payload; transports keep the pair as an envelope or an attachment layer.
"""

from __future__ import annotations

import base64
import binascii
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imagetool.digest import Digest
from imagetool.errors import SignatureError
from imagetool.reference import DockerReference
from imagetool.signature import payload as payloads
from imagetool.transports.envelopes import (
    SIGSTORE_PAYLOAD_TYPE,
    SIGSTORE_SIGNATURE_ANNOTATION,
    SigstoreSignature,
)


def sign(manifest: bytes, identity: DockerReference, key: ec.EllipticCurvePrivateKey) -> SigstoreSignature:
    body = payloads.make(Digest.of(manifest), identity, payloads.COSIGN_TYPE)
    der = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return SigstoreSignature(SIGSTORE_PAYLOAD_TYPE, body,
                             {SIGSTORE_SIGNATURE_ANNOTATION: base64.b64encode(der).decode()})


PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def signed_by(key: object, der: bytes, data: bytes) -> bool:
    """Whether `key` made `der` over `data` (SHA-256; RSA keys PKCS#1 v1.5, as cosign's verifiers)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(der, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(der, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(sig: SigstoreSignature, keys: Sequence[PublicKey]) -> payloads.Payload:
    """The payload, if one of `keys` made the signature; the digest and identity are the caller's to check."""
    if sig.mime_type != SIGSTORE_PAYLOAD_TYPE:
        raise SignatureError(f"not a sigstore signature: payload type {sig.mime_type!r}")
    b64 = sig.signature_b64
    if b64 is None:
        raise SignatureError(f"sigstore signature has no {SIGSTORE_SIGNATURE_ANNOTATION} annotation")
    try:  # line breaks are ignored, as Go's decoder does (some signers wrap the base64)
        der = base64.b64decode(b64.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError) as err:
        raise SignatureError("sigstore signature annotation is not valid base64") from err
    for key in keys:
        if signed_by(key, der, sig.payload):
            return payloads.parse(sig.payload, payloads.COSIGN_TYPE)
    raise SignatureError("sigstore signature was not made by a trusted key")
