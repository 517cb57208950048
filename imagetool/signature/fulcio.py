"""Fulcio ("keyless") certificates: short-lived, issued for an OIDC identity, judged at the Rekor time.

A Fulcio certificate lives minutes; what proves it was valid when it signed is the Rekor SET's
integratedTime, so the path is checked at that time, never now. The identity is the OIDC issuer
Fulcio records in its extensions (1.3.6.1.4.1.57264.1.1 holds the raw string; 1.3.6.1.4.1.57264.1.8
a DER string; when both are present they must agree) and the email in the subjectAltName.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509

from imagetool.errors import SignatureError
from imagetool.signature import pem
from imagetool.signature import rejections as why
from imagetool.signature.x509chain import verify_path

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
#: DER string tags Go's asn1.Unmarshal reads into a string
_STRING_TAGS = {0x0C, 0x13, 0x16, 0x14, 0x1A}


def der_string(value: bytes) -> str:
    """A DER-encoded character string, with nothing after it."""
    if len(value) < 2 or value[0] not in _STRING_TAGS:
        raise SignatureError("invalid ASN.1 in the OIDC issuer v2 extension")
    length, start = value[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or len(value) < 2 + n:
            raise SignatureError("invalid ASN.1 length in the OIDC issuer v2 extension")
        length, start = int.from_bytes(value[2:2 + n], "big"), 2 + n
    if start + length != len(value):
        raise SignatureError("invalid ASN.1 in the OIDC issuer v2 extension (trailing data)")
    try:
        return value[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise SignatureError("the OIDC issuer v2 extension is not valid UTF-8") from err


def oidc_issuer(cert: x509.Certificate) -> str:
    v1 = v2 = None
    for ext in cert.extensions:
        if ext.oid == OID_ISSUER_V1:
            v1 = ext.value.value.decode("utf-8", "replace")  # type: ignore[attr-defined]
        elif ext.oid == OID_ISSUER_V2:
            v2 = der_string(ext.value.value)  # type: ignore[attr-defined]
    if v1 is not None and v2 is not None and v1 != v2:
        raise SignatureError(why.inconsistent_issuer(v1, v2))
    issuer = v1 if v1 is not None else v2
    if issuer is None:
        raise SignatureError(why.missing_issuer())
    return issuer


def emails(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.RFC822Name))


def chain_intermediates(chain_pem: bytes | None) -> list[x509.Certificate]:
    """The chain annotation's certificates but its last (the root, which only the policy can trust)."""
    if not chain_pem:
        return []
    try:
        chain = pem.certificates(chain_pem, "the certificate chain")
    except SignatureError as err:
        raise SignatureError(why.invalid_certificate("certificate chain", str(err))) from err
    return chain[:-1]


@dataclass(frozen=True)
class FulcioRoot:
    roots: Sequence[x509.Certificate]
    oidc_issuer: str
    subject_email: str

    def verify_at(self, when: int, cert_pem: bytes, chain_pem: bytes | None) -> x509.Certificate:
        """The leaf certificate, if it chains to a root at Unix time `when` and names the identity."""
        intermediates = chain_intermediates(chain_pem)
        leaf = pem.leaf_certificate(cert_pem)
        at = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
        try:
            verify_path(leaf, intermediates, self.roots, at)
        except SignatureError as err:
            raise SignatureError(why.untrusted_certificate(str(err))) from err
        issuer = oidc_issuer(leaf)
        if issuer != self.oidc_issuer:
            raise SignatureError(why.wrong_issuer(issuer, self.oidc_issuer))
        got = emails(leaf)
        if self.subject_email not in got:
            raise SignatureError(why.wrong_email(self.subject_email, got))
        return leaf
