"""Simple signing: an OpenPGP-signed (not detached) "atomic container signature" payload.

Signing uses the user's keyring ($GNUPGHOME) through python-gnupg. Verification against a
policy's keys happens in a throw-away keyring holding only those keys, so a key the user
happens to trust elsewhere never makes a signature valid.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterable

import gnupg

from imagetool.digest import Digest
from imagetool.errors import SignatureError
from imagetool.reference import DockerReference
from imagetool.signature import payload as payloads


def _gpg(home: str | None = None) -> gnupg.GPG:
    try:
        return gnupg.GPG(gnupghome=home or os.environ.get("GNUPGHOME") or None)
    except (OSError, ValueError, RuntimeError) as err:
        raise SignatureError(f"cannot run gpg: {err}") from err


def read_passphrase(path: str | None) -> str | None:
    """A passphrase file's first line; its trailing newline is not part of the passphrase."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise SignatureError(f"reading passphrase file {path}: {err.strerror or err}") from err
    return text.split("\n", 1)[0].removesuffix("\r")


def _secret_key(gpg: gnupg.GPG, key: str) -> set[str]:
    """Fingerprints (primary and subkeys) of the one secret key `key` names.

    gpg ignores a `--default-key` it cannot find and signs with the default key instead,
    so the key is looked up first and the signer checked afterwards.
    """
    found = gpg.list_keys(secret=True, keys=[key])
    if len(found) != 1:
        what = "no secret key" if not found else f"{len(found)} secret keys"
        raise SignatureError(f"signing with GPG key {key} failed: {what} in the keyring match it")
    entry = found[0]
    fingerprints = {str(entry["fingerprint"]).upper()}
    fingerprints |= {str(sub[2]).upper() for sub in entry.get("subkeys") or [] if len(sub) > 2 and sub[2]}
    return fingerprints


def sign_blob(data: bytes, fingerprint: str, passphrase: str | None = None) -> bytes:
    """An OpenPGP message (binary, signed, not detached) holding `data`, signed by exactly that key."""
    gpg = _gpg()
    allowed = _secret_key(gpg, fingerprint)
    result = gpg.sign(data, keyid=fingerprint, passphrase=passphrase, binary=True, detach=False,
                      clearsign=False)
    if not result.data or result.status != "signature created" or getattr(result, "returncode", 0):
        # gpg writes a partial message before it fails, so only its status says whether it signed
        lines = [ln for ln in (result.stderr or "").splitlines() if ln.startswith("gpg:")]
        detail = lines[-1].removeprefix("gpg:").strip() if lines else "unknown error"
        raise SignatureError(f"signing with GPG key {fingerprint} failed: {detail}")
    if (result.fingerprint or "").upper() not in allowed:
        raise SignatureError(f"signing with GPG key {fingerprint} failed: gpg signed with "
                             f"key {result.fingerprint} instead")
    return bytes(result.data)


def sign(manifest: bytes, identity: DockerReference | str, fingerprint: str,
         passphrase: str | None = None) -> bytes:
    """A simple signature claiming that `manifest` is `identity`."""
    body = payloads.make(Digest.of(manifest), identity, payloads.SIMPLE_TYPE)
    return sign_blob(body, fingerprint, passphrase)


@dataclass(frozen=True)
class Verified:
    """What a valid signature says, and which key made it."""

    fingerprint: str
    payload: payloads.Payload


def _check_message(gpg: gnupg.GPG, blob: bytes, trusted: Iterable[str]) -> tuple[str, bytes]:
    if not blob:
        raise SignatureError("empty signature")
    result = gpg.decrypt(blob)
    count = sum(1 for line in (result.stderr or "").splitlines() if line.startswith("[GNUPG:] NEWSIG"))
    if count > 1:  # containers/image accepts exactly one signature per message
        raise SignatureError(f"invalid OpenPGP signature: the message carries {count} signatures, not one")
    fingerprint = (getattr(result, "pubkey_fingerprint", None) or result.fingerprint or "").upper()
    if not result.valid:
        status = (result.status or "").strip()
        key_id = getattr(result, "key_id", None)
        if status == "no public key":
            raise SignatureError(f"signature made by an untrusted key (key id {key_id})")
        if "EXPSIG" in (result.stderr or "") or "EXPKEYSIG" in (result.stderr or ""):
            raise SignatureError("signature or its key has expired")
        raise SignatureError(f"invalid OpenPGP signature: {status or 'not a signed message'}")
    wanted = {fp.upper().replace(" ", "") for fp in trusted}
    signer_fps = {fingerprint, (result.fingerprint or "").upper()}
    if not signer_fps & wanted:
        raise SignatureError(f"signature made by key {fingerprint}, which is not trusted")
    return fingerprint, bytes(result.data)


def verify_blob(blob: bytes, trusted: Iterable[str], home: str | None = None) -> tuple[str, bytes]:
    """The signing key's fingerprint and the signed data, if `blob` is a valid message by a trusted key."""
    return _check_message(_gpg(home), blob, trusted)


def verify(blob: bytes, trusted: Iterable[str], home: str | None = None) -> Verified:
    """Check the OpenPGP message and parse its payload (the identity and digest are the caller's)."""
    fingerprint, data = verify_blob(blob, trusted, home)
    return Verified(fingerprint, payloads.parse(data, payloads.SIMPLE_TYPE))


def _gpg_parent() -> str:
    """A short private directory for a GnuPG home (socket paths hold at most 107 bytes)."""
    from imagetool.tmpdirs import small_temp_dir

    chosen = small_temp_dir()  # None for root: /tmp as before (mkdtemp: a random name, mode 0700)
    return chosen if chosen and len(chosen) <= 60 else "/tmp"


class Keyring:
    """A temporary GNUPGHOME holding only the given public keys (removed on close)."""

    def __init__(self, key_blobs: Iterable[bytes]) -> None:
        # gpg-agent socket paths must stay short: $XDG_RUNTIME_DIR for an unprivileged user when it is, else /tmp
        self.home = tempfile.mkdtemp(prefix="imagetool-gpg-", dir=_gpg_parent())
        try:
            os.chmod(self.home, 0o700)
            self.gpg = _gpg(self.home)
            fingerprints: list[str] = []
            for blob in key_blobs:
                result = self.gpg.import_keys(blob)
                if not result.fingerprints:
                    raise SignatureError("no OpenPGP public key found in the policy's key data")
                fingerprints.extend(fp.upper() for fp in result.fingerprints)
            self.fingerprints = fingerprints
        except BaseException:
            self.close()
            raise

    def verify(self, blob: bytes) -> Verified:
        fingerprint, data = _check_message(self.gpg, blob, self.fingerprints)
        return Verified(fingerprint, payloads.parse(data, payloads.SIMPLE_TYPE))

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Keyring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
