"""PEM blocks and certificates as sigstore annotations and policy files carry them."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509

from imagetool.errors import SignatureError

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----[ \t]*(?:\r?\n|$)", re.S)


def blocks(data: bytes, what: str) -> list[tuple[str, bytes]]:
    """(type, DER) of each PEM block in `data`, in order."""
    out = []
    for m in _BLOCK.finditer(data):
        body = b"".join(line.strip() for line in m.group(2).splitlines() if b":" not in line)
        try:
            out.append((m.group(1).decode(), base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError) as err:
            raise SignatureError(f"{what}: PEM block {m.group(1).decode()} is not valid base64") from err
    return out


def single_block(data: bytes, what: str) -> bytes:
    """The DER of `data`, which must be one PEM block and nothing else (trailing whitespace aside)."""
    m = _BLOCK.match(data.lstrip())
    if m is None:
        raise SignatureError(f"{what} is not in PEM format")
    if data.lstrip()[m.end():].strip():
        raise SignatureError(f"{what} has trailing data")
    return blocks(m.group(0), what)[0][1]


def certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """Every CERTIFICATE block of `data`; another kind of block, or an unreadable certificate, is an error."""
    found = blocks(data, what)
    if not found:
        raise SignatureError(f"{what}: no certificate found")
    certs = []
    for kind, der in found:
        if kind != "CERTIFICATE":
            raise SignatureError(f"{what}: unexpected PEM block {kind}")
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as err:
            raise SignatureError(f"{what}: {err}") from err
    return certs


def leaf_certificate(data: bytes) -> x509.Certificate:
    certs = certificates(data, "the signing certificate")
    if len(certs) != 1:
        raise SignatureError("the signing certificate annotation holds more than one certificate")
    return certs[0]
