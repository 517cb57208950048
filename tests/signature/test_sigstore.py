"""Sigstore keys and signatures imagetool makes, checked by a verifier written here from the cosign format.

The helpers below deliberately import nothing from imagetool: they read the envelope
(`\\0sigstore-json\\n` + JSON), the encrypted key (scrypt + NaCl secretbox) and check the
ECDSA-P256/SHA-256 signature with `cryptography` directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import nacl.secret
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image
from tests.signature.conftest import write_policy

IDENTITY = "registry.example.com/team/app:2.1"


# -- the independent verifier

def read_envelope(data: bytes) -> tuple[bytes, str, dict]:
    marker = b"\x00sigstore-json\n"
    assert data.startswith(marker)
    doc = json.loads(data[len(marker):])
    return base64.b64decode(doc["payload"]), doc["mimeType"], doc["annotations"]


def check_cosign_signature(data: bytes, public_pem: bytes, manifest: bytes, identity: str) -> dict:
    payload, mime, annotations = read_envelope(data)
    assert mime == "application/vnd.dev.cosign.simplesigning.v1+json"
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    sig = base64.b64decode(annotations["dev.cosignproject.cosign/signature"])
    key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature
    doc = json.loads(payload)
    critical = doc["critical"]
    assert critical["type"] == "cosign container image signature"
    assert critical["image"]["docker-manifest-digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert critical["identity"]["docker-reference"] == identity
    return doc


def decrypt_cosign_key(pem: bytes, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    lines = pem.decode().strip().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    params = doc["kdf"]["params"]
    secret = hashlib.scrypt(passphrase, salt=base64.b64decode(doc["kdf"]["salt"]), n=params["N"], r=params["r"],
                            p=params["p"], dklen=32, maxmem=1 << 30)
    der = nacl.secret.SecretBox(secret).decrypt(base64.b64decode(doc["ciphertext"]),
                                                base64.b64decode(doc["cipher"]["nonce"]))
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


# -- tests

def make_keys(tmp_path: Path, passphrase: str = "sigstore pass") -> tuple[Path, Path, Path]:
    pass_file = tmp_path / "pass"
    pass_file.write_text(passphrase + "\n")  # the newline is not part of the passphrase
    out = imagetool("generate-key", "--output-prefix", str(tmp_path / "key"), "--passphrase-file", str(pass_file))
    assert "key.private" in out.stdout
    return tmp_path / "key.private", tmp_path / "key.pub", pass_file


def test_generate_key_format(tmp_path: Path) -> None:
    private, public, _ = make_keys(tmp_path)
    key = decrypt_cosign_key(private.read_bytes(), b"sigstore pass")
    pub = serialization.load_pem_public_key(public.read_bytes())
    assert key.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]
    assert private.stat().st_mode & 0o077 == 0
    # never overwrite an existing key
    again = imagetool("generate-key", "--output-prefix", str(tmp_path / "key"), "--passphrase-file",
                      str(tmp_path / "pass"), check=False)
    assert "refusing to overwrite" in one_line_error(again)
    assert decrypt_cosign_key(private.read_bytes(), b"sigstore pass")


def test_sign_on_copy_and_verify(tmp_path: Path) -> None:
    private, public, pass_file = make_keys(tmp_path)
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=2, size=1024)
    out = tmp_path / "signed"
    imagetool("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file",
              str(pass_file), "--sign-identity", IDENTITY, f"oci:{layout}:v1", f"dir:{out}")
    manifest = (out / "manifest.json").read_bytes()
    doc = check_cosign_signature((out / "signature-1").read_bytes(), public.read_bytes(), manifest, IDENTITY)
    assert "optional" in doc
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public),
                                                      "signedIdentity": {"type": "matchRepoDigestOrExact"}}])
    ok = imagetool("verify", "--policy", policy, "--identity", IDENTITY, f"dir:{out}")
    assert "sigstoreSigned" in ok.stdout
    # copying checks the policy (a dir: image has no name of its own: exactReference) and keeps the signature
    exact = write_policy(tmp_path / "exact.json", [{"type": "sigstoreSigned", "keyPath": str(public),
                                                    "signedIdentity": {"type": "exactReference",
                                                                       "dockerReference": IDENTITY}}])
    again = tmp_path / "again"
    imagetool("--policy", exact, "copy", f"dir:{out}", f"dir:{again}")
    assert (again / "signature-1").read_bytes() == (out / "signature-1").read_bytes()


def test_wrong_passphrase(tmp_path: Path) -> None:
    private, _, _ = make_keys(tmp_path)
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    bad = imagetool("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(private),
                    "--sign-passphrase-file", str(wrong), "--sign-identity", IDENTITY, f"oci:{layout}:v1",
                    f"dir:{tmp_path / 'out'}", check=False)
    assert "wrong passphrase" in one_line_error(bad)
    assert not (tmp_path / "out").exists()


def test_unencrypted_pkcs8_key(tmp_path: Path) -> None:
    private = tmp_path / "plain.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(private)], check=True, capture_output=True)
    public = tmp_path / "plain.pub"
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                   capture_output=True)
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    out = tmp_path / "signed"
    imagetool("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(private), "--sign-identity",
              IDENTITY, f"oci:{layout}:v1", f"dir:{out}")
    check_cosign_signature((out / "signature-1").read_bytes(), public.read_bytes(),
                           (out / "manifest.json").read_bytes(), IDENTITY)


def test_cosign_key_made_elsewhere(tmp_path: Path) -> None:
    """An encrypted key written by this test from the format (legacy cosign PEM type and scrypt N)."""
    import os

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(24)
    secret = hashlib.scrypt(b"elsewhere", salt=salt, n=32768, r=8, p=1, dklen=32, maxmem=1 << 30)
    sealed = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    private = tmp_path / "cosign.key"
    kind = "ENCRYPTED COSIGN PRIVATE KEY"
    private.write_text(f"-----BEGIN {kind}-----\n{body}-----END {kind}-----\n")
    pass_file = tmp_path / "pass"
    pass_file.write_text("elsewhere")
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    out = tmp_path / "signed"
    imagetool("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file",
              str(pass_file), "--sign-identity", IDENTITY, f"oci:{layout}:v1", f"dir:{out}")
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    check_cosign_signature((out / "signature-1").read_bytes(), public, (out / "manifest.json").read_bytes(), IDENTITY)
