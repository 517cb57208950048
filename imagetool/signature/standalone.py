"""Verify one simple signature of a manifest file against an expected identity and key (skopeo's rule)."""

from __future__ import annotations

from imagetool.digest import Digest
from imagetool.errors import SignatureError
from imagetool.reference import parse as parse_reference
from imagetool.signature import simple
from imagetool.signature.payload import manifest_matches


def verify_manifest_signature(blob: bytes, manifest: bytes, expected_reference: str,
                              fingerprint: str) -> tuple[str, Digest]:
    """(signing key fingerprint, manifest digest) when the signature is valid for exactly this image.

    The key must be in the user's keyring ($GNUPGHOME) and be `fingerprint`; the signed identity
    must equal `expected_reference` once both are normalised.
    """
    expected = parse_reference(expected_reference)
    verified = simple.verify(blob, [fingerprint])
    if not manifest_matches(manifest, verified.payload.manifest_digest):
        raise SignatureError(f"signature is for manifest {verified.payload.manifest_digest}, "
                             f"not {Digest.of(manifest)}")
    signed = verified.payload.identity()
    if str(signed) != str(expected):
        raise SignatureError(f"signature is for {signed}, not {expected}")
    return verified.fingerprint, verified.payload.manifest_digest
