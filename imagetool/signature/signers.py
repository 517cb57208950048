"""Signers the copy pipeline calls: each turns (manifest, identity) into a signature envelope."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from imagetool.errors import SignatureError
from imagetool.reference import DockerReference
from imagetool.signature import keys as keyfiles
from imagetool.signature import simple, sigstore
from imagetool.transports import envelopes


@dataclass
class GPGSigner:
    """Simple signing with a key from the user's keyring ($GNUPGHOME)."""

    fingerprint: str
    passphrase: str | None = None

    def sign(self, manifest: bytes, identity: DockerReference) -> bytes:
        return envelopes.serialize(envelopes.SimpleSignature(
            simple.sign(manifest, identity, self.fingerprint, self.passphrase)))

    def check(self) -> None:
        """Sign a probe, so an unknown key or a wrong passphrase fails the copy before it writes anything."""
        simple.sign_blob(b"imagetool signing key check", self.fingerprint, self.passphrase)


@dataclass
class SigstoreSigner:
    """Sigstore signing with a private key file (cosign-encrypted or plain PKCS#8 PEM)."""

    key: ec.EllipticCurvePrivateKey
    #: store the signature as an OCI 1.1 referrer of the image rather than in the `.sig` attachment
    as_referrer: bool = False

    def sign(self, manifest: bytes, identity: DockerReference) -> bytes:
        return envelopes.serialize(sigstore.sign(manifest, identity, self.key))


def load_sigstore_signer(key_path: str, passphrase: str | None) -> SigstoreSigner:
    try:
        with open(key_path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SignatureError(f"reading private key {key_path}: {err.strerror or err}") from err
    return SigstoreSigner(keyfiles.load_private_key(data, passphrase))


def make_signers(sign_by: str | None, sigstore_key: str | None,
                 passphrase_file: str | None) -> list[GPGSigner | SigstoreSigner]:
    """The signers copy flags ask for; the passphrase file serves whichever key is given."""
    passphrase = simple.read_passphrase(passphrase_file)
    signers: list[GPGSigner | SigstoreSigner] = []
    if sign_by:
        gpg_signer = GPGSigner(sign_by, passphrase)
        gpg_signer.check()
        signers.append(gpg_signer)
    if sigstore_key:
        signers.append(load_sigstore_signer(sigstore_key, passphrase))
    return signers
