"""Sigstore (cosign) key files: ECDSA P-256, the private key encrypted with scrypt + NaCl secretbox.

The encrypted PEM block ("ENCRYPTED SIGSTORE PRIVATE KEY", older cosign: "ENCRYPTED COSIGN
PRIVATE KEY") holds JSON: `kdf` {name "scrypt", params {N, r, p}, salt (base64)}, `cipher`
{name "nacl/secretbox", nonce (base64)} and `ciphertext` (base64 secretbox output over the
PKCS#8 DER key). Using this format lets cosign and skopeo read keys we write and vice versa.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imagetool.errors import SignatureError
from imagetool.outputs import write_new_output

ENCRYPTED_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 65536, 8, 1
_MAX_SCRYPT_N = 1 << 20


def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    """(type, DER) for each PEM block in `text`."""
    blocks: list[tuple[str, bytes]] = []
    lines = iter(text.splitlines())
    for line in lines:
        line = line.strip()
        if not (line.startswith("-----BEGIN ") and line.endswith("-----")):
            continue
        kind = line[len("-----BEGIN "):-5]
        body: list[str] = []
        for inner in lines:
            inner = inner.strip()
            if inner == f"-----END {kind}-----":
                break
            if ":" not in inner:  # skip RFC 1421 headers
                body.append(inner)
        else:
            raise SignatureError(f"unterminated PEM block {kind}")
        try:
            blocks.append((kind, base64.b64decode("".join(body), validate=True)))
        except ValueError as err:
            raise SignatureError(f"PEM block {kind} is not valid base64") from err
    return blocks


def _pem(kind: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    if n > _MAX_SCRYPT_N or n < 2 or n & (n - 1) or not (0 < r <= 32) or not (0 < p <= 16):
        raise SignatureError(f"unsupported scrypt parameters N={n} r={r} p={p}")
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n + (1 << 20))


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    """The cosign-encrypted PEM for `key`."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    sealed = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return _pem(ENCRYPTED_PEM_TYPES[0], json.dumps(doc, separators=(",", ":")).encode())


def _decrypt(blob: bytes, passphrase: bytes) -> bytes:
    try:
        doc = json.loads(blob)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise SignatureError(f"unsupported key encryption {kdf['name']}/{cipher['name']}")
        params = kdf["params"]
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        sealed = base64.b64decode(doc["ciphertext"])
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    except (ValueError, KeyError, TypeError) as err:
        raise SignatureError(f"malformed encrypted private key: {err}") from err
    secret = _derive(passphrase, salt, n, r, p)
    try:
        return nacl.secret.SecretBox(secret).decrypt(sealed, nonce)
    except (nacl.exceptions.CryptoError, ValueError) as err:
        raise SignatureError("cannot decrypt the private key: wrong passphrase or damaged key") from err


def load_private_key(data: bytes, passphrase: str | None) -> ec.EllipticCurvePrivateKey:
    """An ECDSA private key from a cosign-encrypted PEM or an unencrypted (PKCS#8/SEC1) PEM."""
    try:
        blocks = _pem_blocks(data.decode("ascii"))
    except UnicodeDecodeError as err:
        raise SignatureError("private key is not a PEM file") from err
    if not blocks:
        raise SignatureError("no PEM block in the private key file")
    kind, der = blocks[0]
    if kind in ENCRYPTED_PEM_TYPES:
        if passphrase is None:
            try:  # keys made with an empty passphrase need none
                der = _decrypt(der, b"")
            except SignatureError as err:
                raise SignatureError("the private key is encrypted: a passphrase is required") from err
        else:
            der = _decrypt(der, passphrase.encode())
        loader = serialization.load_der_private_key
        source = der
    else:
        loader = serialization.load_pem_private_key  # type: ignore[assignment]
        source = data
    try:
        key = loader(source, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise SignatureError(f"cannot read the private key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SignatureError("only ECDSA P-256 private keys are supported for sigstore signing")
    return key


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate(output_prefix: str, passphrase: str) -> tuple[str, str]:
    """Write PREFIX.private (encrypted) and PREFIX.pub, refusing to overwrite either."""
    priv_path, pub_path = f"{output_prefix}.private", f"{output_prefix}.pub"
    for path in (priv_path, pub_path):
        if os.path.lexists(path):
            raise SignatureError(f"refusing to overwrite {path}")
    key = ec.generate_private_key(ec.SECP256R1())
    private = encrypt_private_key(key, passphrase.encode())
    _write_new(priv_path, private, 0o600)
    try:
        _write_new(pub_path, public_pem(key.public_key()), 0o644)
    except BaseException:
        os.unlink(priv_path)
        raise
    return priv_path, pub_path


def _write_new(path: str, data: bytes, mode: int) -> None:
    try:
        write_new_output(path, data, mode)
    except OSError as err:
        raise SignatureError(f"writing {path}: {err.strerror or err}") from err
