"""Fulcio certificates made here (our own CA and Rekor key, as a private sigstore instance has):
the new OIDC issuer extension (1.3.6.1.4.1.57264.1.8, a DER string) and the old one, alone or
together; the certificate judged at the SET's integratedTime, whatever the clock says now."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from imagetool.digest import Digest
from imagetool.errors import PolicyRejected
from imagetool.reference import parse as parse_reference
from imagetool.signature import payload as payloads
from imagetool.signature.policy_eval import PolicyContext
from imagetool.transports import parse_image_name
from imagetool.transports.base import SystemContext
from imagetool.transports.envelopes import SIGSTORE_PAYLOAD_TYPE, SigstoreSignature, serialize
from tests.signature.conftest import write_policy

ISSUER = "https://issuer.example.com"
EMAIL = "builder@example.com"
REPO = "registry.example.com/team/app"
T0 = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


class Instance:
    """A root CA, an intermediate, and a Rekor log key."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.inter_key = ec.generate_private_key(ec.SECP384R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca("test-root", self.root_key, self.root_key, None, 1)
        self.inter = self._ca("test-intermediate", self.inter_key, self.root_key, self.root, 0)

    def _ca(self, cn: str, key, signer, parent, path_len: int) -> x509.Certificate:  # type: ignore[no-untyped-def]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (x509.CertificateBuilder().subject_name(name)
                .issuer_name(parent.subject if parent else name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(T0 - datetime.timedelta(days=365)).not_valid_after(T0 + datetime.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .sign(signer, hashes.SHA384()))

    def leaf(self, key: ec.EllipticCurvePrivateKey, issuers: dict) -> x509.Certificate:  # type: ignore[type-arg]
        b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.inter.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(T0).not_valid_after(T0 + datetime.timedelta(minutes=10))
             .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False))
        for oid, value in issuers.items():
            b = b.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
        return b.sign(self.inter_key, hashes.SHA256())

    def signature(self, manifest: bytes, issuers: dict, integrated: datetime.datetime) -> SigstoreSignature:  # type: ignore[type-arg]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.leaf(key, issuers)
        body = payloads.make(Digest.of(manifest), parse_reference(REPO), payloads.COSIGN_TYPE)
        sig = key.sign(body, ec.ECDSA(hashes.SHA256()))
        entry = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(body).hexdigest()}},
            "signature": {"content": base64.b64encode(sig).decode(),
                          "publicKey": {"content": base64.b64encode(_pem(cert)).decode()}}}}
        payload = {"body": base64.b64encode(json.dumps(entry).encode()).decode(),
                   "integratedTime": int(integrated.timestamp()), "logIndex": 7, "logID": "ab" * 32}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        set_sig = self.rekor_key.sign(canonical, ec.ECDSA(hashes.SHA256()))
        bundle = {"SignedEntryTimestamp": base64.b64encode(set_sig).decode(), "Payload": payload}
        return SigstoreSignature(SIGSTORE_PAYLOAD_TYPE, body, {
            "dev.cosignproject.cosign/signature": base64.b64encode(sig).decode(),
            "dev.sigstore.cosign/bundle": json.dumps(bundle),
            "dev.sigstore.cosign/certificate": _pem(cert).decode(),
            "dev.sigstore.cosign/chain": (_pem(self.inter) + _pem(self.root)).decode()})


@pytest.fixture(scope="module")
def instance() -> Instance:
    return Instance()


def judge(tmp_path: Path, inst: Instance, sig: SigstoreSignature, manifest: bytes) -> str:
    image = tmp_path / "img"
    image.mkdir(exist_ok=True)
    (image / "manifest.json").write_bytes(manifest)
    (image / "signature-1").write_bytes(serialize(sig))
    (tmp_path / "root.pem").write_bytes(_pem(inst.root))
    (tmp_path / "rekor.pub").write_bytes(inst.rekor_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    policy = write_policy(tmp_path / "policy.json", [{
        "type": "sigstoreSigned", "rekorPublicKeyPath": str(tmp_path / "rekor.pub"),
        "fulcio": {"caPath": str(tmp_path / "root.pem"), "oidcIssuer": ISSUER, "subjectEmail": EMAIL},
        "signedIdentity": {"type": "exactRepository", "dockerRepository": REPO}}])
    ref = parse_image_name(f"dir:{image}")
    src = ref.open_source(SystemContext())
    return PolicyContext.load(policy, False).check(ref, src, manifest, None)


MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": "sha256:" + "0" * 64, "size": 2}, "layers": []}).encode()


@pytest.mark.parametrize("issuers", [{V2: _der_utf8(ISSUER)}, {V1: ISSUER.encode()},
                                     {V1: ISSUER.encode(), V2: _der_utf8(ISSUER)}], ids=["v2", "v1", "both"])
def test_issuer_extensions(tmp_path: Path, instance: Instance, issuers: dict) -> None:  # type: ignore[type-arg]
    sig = instance.signature(MANIFEST, issuers, T0 + datetime.timedelta(minutes=5))
    assert "sigstoreSigned: signed as " + REPO in judge(tmp_path, instance, sig, MANIFEST)


@pytest.mark.parametrize("issuers,reason", [
    ({V2: _der_utf8("https://other.example.com")}, "the certificate's OIDC issuer is 'https://other.example.com'"),
    ({V1: ISSUER.encode(), V2: _der_utf8("https://other.example.com")}, "OIDC issuer extensions disagree"),
    ({}, "has no OIDC issuer extension"),
    ({V2: ISSUER.encode()}, "invalid ASN.1 in the OIDC issuer v2 extension"),
], ids=["other", "inconsistent", "none", "not-der"])
def test_issuer_refusals(tmp_path: Path, instance: Instance, issuers: dict, reason: str) -> None:  # type: ignore[type-arg]
    sig = instance.signature(MANIFEST, issuers, T0 + datetime.timedelta(minutes=5))
    with pytest.raises(PolicyRejected, match=reason):
        judge(tmp_path, instance, sig, MANIFEST)


@pytest.mark.parametrize("offset", [datetime.timedelta(minutes=-1), datetime.timedelta(minutes=11)],
                         ids=["before", "after"])
def test_certificate_judged_at_integrated_time(tmp_path: Path, instance: Instance,
                                               offset: datetime.timedelta) -> None:
    """Logged outside the certificate's ten minutes: refused, although the CA is valid all year."""
    sig = instance.signature(MANIFEST, {V2: _der_utf8(ISSUER)}, T0 + offset)
    with pytest.raises(PolicyRejected, match="is valid from 2024-03-01T12:00:00Z to 2024-03-01T12:10:00Z"):
        judge(tmp_path, instance, sig, MANIFEST)
