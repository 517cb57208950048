"""Throw-away GnuPG homes with keys generated on the spot (for signing tests and skopeo interop)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass
class GPGHome:
    home: str
    fingerprint: str          # a key without passphrase
    protected: str            # a key whose passphrase is PASSPHRASE

    PASSPHRASE = "correct horse battery"

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": self.home}

    def export(self, fingerprint: str) -> bytes:
        return gpg(self.home, "--export", fingerprint).stdout


def gpg(home: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", *args], input=input,
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"gpg {' '.join(args)} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc


def _new_key(home: str, uid: str, passphrase: str) -> str:
    gpg(home, "--pinentry-mode", "loopback", "--passphrase", passphrase, "--quick-gen-key", uid,
        "ed25519", "sign", "never")
    out = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")][0]


def make_home() -> GPGHome:
    """A new GNUPGHOME (short path under /tmp: the agent socket must fit) with two keys."""
    home = tempfile.mkdtemp(prefix="itgpg-", dir="/tmp")
    os.chmod(home, 0o700)
    with open(os.path.join(home, "gpg-agent.conf"), "w") as f:
        f.write("allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n")
    fp = _new_key(home, "imagetool test <signer@example.com>", "")
    protected = _new_key(home, "imagetool protected <protected@example.com>", GPGHome.PASSPHRASE)
    return GPGHome(home, fp, protected)


def remove_home(h: GPGHome) -> None:
    subprocess.run(["gpgconf", "--homedir", h.home, "--kill", "all"], capture_output=True, timeout=30)
    shutil.rmtree(h.home, ignore_errors=True)
