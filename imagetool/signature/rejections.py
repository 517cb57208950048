"""The wording of every reason a sigstore signature (Rekor SET, Fulcio or PKI certificate) is refused.

Kept in one place so that the CLI and tools prefixing these lines (`Source image rejected: ...`)
see a stable text; each function returns the message of one SignatureError.
"""

from __future__ import annotations

# annotations a sigstore signature carries beside its payload (cosign's names)
SET_ANNOTATION = "dev.sigstore.cosign/bundle"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"


def missing_annotation(name: str) -> str:
    return f"missing {name} annotation"


def invalid_set(why: str) -> str:
    return f"invalid Rekor SET: {why}"


SET_NOT_SIGNED = "the Rekor SET is not signed by a trusted Rekor key"
SET_KEY_MISMATCH = "the public key or certificate in the Rekor SET does not match"
SET_SIGNATURE_MISMATCH = "the signature in the Rekor SET does not match"
SET_PAYLOAD_MISMATCH = "the payload in the Rekor SET does not match"
NO_KEY_MATCHES_SET = "the Rekor SET does not record a signature by any trusted key"


def invalid_certificate(what: str, why: str) -> str:
    return f"invalid {what}: {why}"


def untrusted_certificate(why: str) -> str:
    return f"the signing certificate is not trusted: {why}"


def wrong_issuer(got: str, want: str) -> str:
    return f"the certificate's OIDC issuer is {got!r}, not {want!r}"


def missing_issuer() -> str:
    return "the Fulcio certificate has no OIDC issuer extension"


def inconsistent_issuer(v1: str, v2: str) -> str:
    return f"the Fulcio certificate's OIDC issuer extensions disagree: {v1!r} and {v2!r}"


def wrong_email(want: str, got: list[str]) -> str:
    return f"the certificate is not for email {want!r} (it names {', '.join(repr(g) for g in got) or 'none'})"


def wrong_hostname(want: str, got: list[str]) -> str:
    return f"the certificate is not for host {want!r} (it names {', '.join(repr(g) for g in got) or 'none'})"


BAD_SIGNATURE_BY_CERTIFICATE = "the signature was not made by the certificate's key"
