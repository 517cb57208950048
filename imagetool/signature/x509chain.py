"""Certificate path validation for sigstore signers (Fulcio and X.509 PKI), as Go's x509.Verify does it.

A path runs from the leaf through the given intermediates to one of the trusted roots. Every
certificate on it must be valid at the given time; each issuer must be a CA allowed to sign
certificates (basicConstraints, keyUsage, pathLen); extended key usages along the path must
allow code signing; unknown critical extensions are refused (the leaf's subjectAltName aside,
which the callers match themselves). Name constraints are not evaluated: a path through a CA
that has them is refused rather than accepted unchecked.
"""

from __future__ import annotations

import datetime
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from imagetool.errors import SignatureError

MAX_DEPTH = 10


def _ext(cert: x509.Certificate, cls: type) -> x509.ExtensionType | None:  # type: ignore[type-arg]
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_extensions(cert: x509.Certificate) -> None:
    try:
        extensions = list(cert.extensions)
    except ValueError as err:
        raise SignatureError(f"certificate {cert.subject.rfc4514_string()!r} has invalid extensions: {err}") \
            from err
    for ext in extensions:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            raise SignatureError(f"certificate {cert.subject.rfc4514_string()!r} has an unhandled critical "
                                 f"extension {ext.oid.dotted_string}")


def _valid_at(cert: x509.Certificate, at: datetime.datetime) -> None:
    if at < cert.not_valid_before_utc or at > cert.not_valid_after_utc:
        raise SignatureError(f"certificate {cert.subject.rfc4514_string() or '(no subject)'} is valid from "
                             f"{cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
                             f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, not at {at:%Y-%m-%dT%H:%M:%SZ}")


def _may_issue(issuer: x509.Certificate, below: int) -> str | None:
    """Why `issuer` cannot sign a certificate with `below` CA certificates under it, or None."""
    bc = _ext(issuer, x509.BasicConstraints)
    if issuer.version == x509.Version.v3 and (bc is None or not bc.ca):  # type: ignore[attr-defined]
        return "is not a CA"
    if bc is not None and bc.path_length is not None and below > bc.path_length:  # type: ignore[attr-defined]
        return "allows a shorter path"
    ku = _ext(issuer, x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:  # type: ignore[attr-defined]
        return "may not sign certificates"
    if _ext(issuer, x509.NameConstraints) is not None:
        return "has name constraints, which are not supported"
    return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _eku_allows(path: Sequence[x509.Certificate], usage: x509.ObjectIdentifier) -> bool:
    for cert in path:
        eku = _ext(cert, x509.ExtendedKeyUsage)
        if eku is None:
            continue
        usages = list(eku)  # type: ignore[call-overload]
        if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
            continue
        if usage not in usages:
            return False
    return True


def verify_path(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], roots: Sequence[x509.Certificate],
                at: datetime.datetime, usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING) \
        -> list[x509.Certificate]:
    """The path leaf -> ... -> root, or SignatureError saying why there is none."""
    if not roots:
        raise SignatureError("no trusted root certificate")
    _check_extensions(leaf)
    _valid_at(leaf, at)
    problems: list[str] = []

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        cert = path[-1]
        below = len(path) - 1  # CA certificates under the next issuer
        for pool, is_root in ((roots, True), (intermediates, False)):
            for issuer in pool:
                if issuer in path or issuer.subject != cert.issuer or not _signed_by(cert, issuer):
                    continue
                name = issuer.subject.rfc4514_string()
                reason = _may_issue(issuer, below)
                if reason is None:
                    try:
                        _check_extensions(issuer)
                        _valid_at(issuer, at)
                    except SignatureError as err:
                        reason = str(err)
                if reason is not None:
                    problems.append(f"{name} {reason}" if not reason.startswith("certificate") else reason)
                    continue
                candidate = path + [issuer]
                if is_root:
                    if _eku_allows(candidate, usage):
                        return candidate
                    problems.append("the certificate may not be used for code signing")
                    continue
                if len(candidate) < MAX_DEPTH:
                    found = extend(candidate)
                    if found is not None:
                        return found
        return None

    if leaf in roots:
        return [leaf]
    found = extend([leaf])
    if found is None:
        detail = problems[0] if problems else "it is not signed by a trusted root (through the given intermediates)"
        raise SignatureError(detail)
    return found
