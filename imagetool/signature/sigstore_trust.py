"""Judge one sigstore signature against a `sigstoreSigned` requirement: keys (optionally with Rekor),
Fulcio + Rekor, or PKI; the result is the payload, whose digest and identity the caller checks.

The order is containers/image's: the Rekor SET first (for Fulcio it gives the time at which the
certificate must have been valid), then the certificate, then the payload signature by the key
that the SET or the certificate vouched for.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagetool.errors import SignatureError
from imagetool.signature import payload as payloads
from imagetool.signature import pem, rekor
from imagetool.signature import policy as p
from imagetool.signature import rejections as why
from imagetool.signature import sigstore
from imagetool.signature.fulcio import FulcioRoot
from imagetool.signature.pki import PKIRoot
from imagetool.transports.envelopes import SIGSTORE_SIGNATURE_ANNOTATION, SigstoreSignature


def public_keys(blob: bytes, what: str) -> list[sigstore.PublicKey]:
    keys: list[sigstore.PublicKey] = []
    for kind, der in pem.blocks(blob, what):
        if kind != "PUBLIC KEY":
            continue
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as err:
            raise SignatureError(f"cannot read {what}: {err}") from err
        keys.append(key)  # type: ignore[arg-type]
    if not keys:
        raise SignatureError(f"no PUBLIC KEY block in {what}")
    return keys


def _spki_pem(key: sigstore.PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class TrustRoot:
    keys: list[sigstore.PublicKey]
    rekor_keys: list[ec.EllipticCurvePublicKey]
    fulcio: FulcioRoot | None
    pki: PKIRoot | None

    @classmethod
    def of(cls, req: p.SigstoreSigned) -> TrustRoot:
        keys = [k for blob in req.keys for k in public_keys(blob, "the public key")]
        rekor_keys = []
        for blob in req.rekor_keys:
            for k in public_keys(blob, "the Rekor public key"):
                if not isinstance(k, ec.EllipticCurvePublicKey):
                    raise SignatureError("the Rekor public key is not an ECDSA key")
                rekor_keys.append(k)
        fulcio = pki = None
        if req.fulcio is not None:
            fulcio = FulcioRoot(pem.certificates(req.fulcio.ca, "the Fulcio CA certificates"),
                                req.fulcio.oidc_issuer, req.fulcio.subject_email)
        if req.pki is not None:
            inter = pem.certificates(req.pki.intermediates, "the PKI intermediate certificates") \
                if req.pki.intermediates else []
            pki = PKIRoot(pem.certificates(req.pki.roots, "the PKI root certificates"), inter,
                          req.pki.subject_email, req.pki.subject_hostname)
        return cls(keys, rekor_keys, fulcio, pki)

    def verify(self, sig: SigstoreSignature) -> payloads.Payload:
        notes = sig.annotations
        b64 = notes.get(SIGSTORE_SIGNATURE_ANNOTATION)
        if b64 is None:
            raise SignatureError(why.missing_annotation(SIGSTORE_SIGNATURE_ANNOTATION))

        def need(name: str) -> bytes:
            if name not in notes:
                raise SignatureError(why.missing_annotation(name))
            return notes[name].encode()

        keys: list[sigstore.PublicKey]
        if self.fulcio is not None:
            cert = need(why.CERTIFICATE_ANNOTATION)
            when = rekor.verify_set(self.rekor_keys, need(why.SET_ANNOTATION), cert, b64, sig.payload)
            chain = notes.get(why.CHAIN_ANNOTATION)
            leaf = self.fulcio.verify_at(when, cert, chain.encode() if chain is not None else None)
            keys = [leaf.public_key()]  # type: ignore[list-item]
        elif self.pki is not None:
            chain = notes.get(why.CHAIN_ANNOTATION)
            leaf = self.pki.verify(need(why.CERTIFICATE_ANNOTATION), chain.encode() if chain is not None else None)
            keys = [leaf.public_key()]  # type: ignore[list-item]
        elif self.rekor_keys:
            set_json = need(why.SET_ANNOTATION)
            failures = []
            for key in self.keys:  # the SET names the key that signed: only that one may verify the payload
                try:
                    rekor.verify_set(self.rekor_keys, set_json, _spki_pem(key), b64, sig.payload)
                except SignatureError as err:
                    failures.append(str(err))
                    continue
                keys = [key]
                break
            else:
                reasons = list(dict.fromkeys(failures))
                raise SignatureError(reasons[0] if len(reasons) == 1 else
                                     f"{why.NO_KEY_MATCHES_SET} ({'; '.join(reasons)})")
        else:
            keys = self.keys
        try:
            return sigstore.verify(sig, keys)
        except SignatureError as err:
            if self.fulcio is not None or self.pki is not None:
                raise SignatureError(why.BAD_SIGNATURE_BY_CERTIFICATE).citing_cause() from err
            raise
