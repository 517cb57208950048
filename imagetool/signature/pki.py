"""X.509 PKI signers: a certificate from the user's own CA, checked now (no transparency log)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509

from imagetool.errors import SignatureError
from imagetool.signature import pem
from imagetool.signature import rejections as why
from imagetool.signature.fulcio import chain_intermediates, emails
from imagetool.signature.x509chain import verify_path


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


def _ips(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def _name_matches(pattern: str, host: str) -> bool:
    """DNS name matching as TLS does: case-insensitive, `*.` matching exactly one leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if not pattern or not host:
        return False
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def hostname_matches(cert: x509.Certificate, host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return any(_name_matches(name, host) for name in _dns_names(cert))
    return str(ip) in _ips(cert)


@dataclass(frozen=True)
class PKIRoot:
    roots: Sequence[x509.Certificate]
    intermediates: Sequence[x509.Certificate]
    subject_email: str
    subject_hostname: str

    def verify(self, cert_pem: bytes, chain_pem: bytes | None,
               now: datetime.datetime | None = None) -> x509.Certificate:
        intermediates = list(self.intermediates) + chain_intermediates(chain_pem)
        leaf = pem.leaf_certificate(cert_pem)
        if self.subject_email:
            got = emails(leaf)
            if self.subject_email not in got:
                raise SignatureError(why.wrong_email(self.subject_email, got))
        if self.subject_hostname and not hostname_matches(leaf, self.subject_hostname):
            raise SignatureError(why.wrong_hostname(self.subject_hostname, _dns_names(leaf) + _ips(leaf)))
        try:
            verify_path(leaf, intermediates, self.roots, now or datetime.datetime.now(datetime.timezone.utc))
        except SignatureError as err:
            raise SignatureError(why.untrusted_certificate(str(err))) from err
        return leaf
