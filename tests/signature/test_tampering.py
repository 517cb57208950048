"""Tampered or unacceptable images: each refused with one clear line, and a refused copy writes nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.gpg import GPGHome
from tests.lib.images import random_image
from tests.signature.conftest import write_policy

IDENTITY = "registry.example.com/team/app:3.0"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    d = tmp_path / "keys"
    d.mkdir()
    pass_file = d / "pass"
    pass_file.write_text("pw\n")
    imagetool("generate-key", "--output-prefix", str(d / "k"), "--passphrase-file", str(pass_file))
    return d / "k.private", d / "k.pub", pass_file


def sign_into_dir(tmp_path: Path, name: str, flags: list[str], seed: int = 1) -> Path:
    layout = tmp_path / f"layout-{name}"
    random_image(layout, "v1", n_layers=1, size=512, seed=seed)
    out = tmp_path / name
    imagetool("--insecure-policy", "copy", *flags, "--sign-identity", IDENTITY, f"oci:{layout}:v1", f"dir:{out}")
    return out


def tree(root: Path) -> dict[str, bytes] | None:
    """Every file under `root` with its bytes (None: `root` does not exist), to show nothing changed."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(tmp_path: Path, policy: str, image: Path, expect: str, source: str | None = None) -> None:
    """verify says no with `expect` in its one line, and so does copy, which writes nothing.

    The copy is tried into a new dir:, a new oci: layout, an existing oci: layout holding
    another image, and the local store.
    """
    source = source or f"dir:{image}"
    bad = imagetool("verify", "--policy", policy, source, check=False)
    assert bad.returncode == 1
    assert expect in one_line_error(bad)
    existing = tmp_path / "existing-layout"
    if not existing.exists():
        random_image(existing, "keep", n_layers=1, size=128, seed=99)
    store = Path(os.environ["IMAGETOOL_STORE"])
    before = {"layout": tree(existing), "store": tree(store)}
    fresh_dir, fresh_oci = tmp_path / "must-not-exist", tmp_path / "must-not-exist-oci"
    for dest in (f"dir:{fresh_dir}", f"oci:{fresh_oci}:v1", f"oci:{existing}:v1", "localhost/refused:v1"):
        bad = imagetool("--policy", policy, "copy", source, dest, check=False)
        assert expect in one_line_error(bad), dest
    assert not fresh_dir.exists() and not fresh_oci.exists()
    assert {"layout": tree(existing), "store": tree(store)} == before


def sigstore_policy(tmp_path: Path, public: Path, identity: str = IDENTITY) -> str:
    return write_policy(tmp_path / "sigstore-policy.json", [{
        "type": "sigstoreSigned", "keyPath": str(public),
        "signedIdentity": {"type": "exactReference", "dockerReference": identity}}])


def gpg_policy(tmp_path: Path, home: GPGHome) -> str:
    key = tmp_path / "signer.gpg"
    key.write_bytes(home.export(home.fingerprint))
    return write_policy(tmp_path / "gpg-policy.json", [{
        "type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key),
        "signedIdentity": {"type": "exactReference", "dockerReference": IDENTITY}}])


def test_manifest_changed_after_signing(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, pass_file = keys
    image = sign_into_dir(tmp_path, "img", ["--sign-by-sigstore-private-key", str(private),
                                           "--sign-passphrase-file", str(pass_file)])
    policy = sigstore_policy(tmp_path, public)
    imagetool("verify", "--policy", policy, f"dir:{image}")
    # a local store that already holds an image must come out of the refused copies unchanged
    other = tmp_path / "other-layout"
    random_image(other, "v1", n_layers=1, size=256, seed=7)
    imagetool("--insecure-policy", "copy", f"oci:{other}:v1", "localhost/already:v1")
    doc = json.loads((image / "manifest.json").read_bytes())
    doc.setdefault("annotations", {})["tampered"] = "yes"
    (image / "manifest.json").write_text(json.dumps(doc))
    refused(tmp_path, policy, image, "signature is for manifest")


def test_signature_for_another_digest(tmp_path: Path, gnupg: GPGHome) -> None:
    first = sign_into_dir(tmp_path, "first", ["--sign-by", gnupg.fingerprint], seed=1)
    second = sign_into_dir(tmp_path, "second", ["--sign-by", gnupg.fingerprint], seed=2)
    shutil.copyfile(second / "signature-1", first / "signature-1")
    refused(tmp_path, gpg_policy(tmp_path, gnupg), first, "signature is for manifest")


def test_other_identity(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, pass_file = keys
    image = sign_into_dir(tmp_path, "img", ["--sign-by-sigstore-private-key", str(private),
                                           "--sign-passphrase-file", str(pass_file)])
    policy = sigstore_policy(tmp_path, public, "registry.example.com/team/app:4.0")
    refused(tmp_path, policy, image, f"claims identity {IDENTITY}")


def test_untrusted_sigstore_key(tmp_path: Path, keys: tuple[Path, Path, Path]) -> None:
    private, _, pass_file = keys
    image = sign_into_dir(tmp_path, "img", ["--sign-by-sigstore-private-key", str(private),
                                           "--sign-passphrase-file", str(pass_file)])
    imagetool("generate-key", "--output-prefix", str(tmp_path / "other"), "--passphrase-file", str(pass_file))
    refused(tmp_path, sigstore_policy(tmp_path, tmp_path / "other.pub"), image, "not made by a trusted key")


def test_truncated_and_garbage_signatures(tmp_path: Path, keys: tuple[Path, Path, Path], gnupg: GPGHome) -> None:
    private, public, pass_file = keys
    image = sign_into_dir(tmp_path, "img", ["--sign-by-sigstore-private-key", str(private),
                                           "--sign-passphrase-file", str(pass_file)])
    sig = (image / "signature-1").read_bytes()
    (image / "signature-1").write_bytes(sig[: len(sig) // 2])
    refused(tmp_path, sigstore_policy(tmp_path, public), image, "invalid sigstore signature envelope")

    signed = sign_into_dir(tmp_path, "gpg", ["--sign-by", gnupg.fingerprint], seed=3)
    policy = gpg_policy(tmp_path, gnupg)
    blob = (signed / "signature-1").read_bytes()
    (signed / "signature-1").write_bytes(blob[: len(blob) - 20])
    refused(tmp_path, policy, signed, "invalid OpenPGP signature")
    (signed / "signature-1").write_bytes(b"this is not a signature at all")
    refused(tmp_path, policy, signed, "invalid OpenPGP signature")


def test_reject_scope(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    policy = write_policy(tmp_path / "policy.json", [{"type": "insecureAcceptAnything"}],
                          {"oci": {str(layout.resolve()): [{"type": "reject"}]}})
    refused(tmp_path, policy, layout, f"scope oci:{layout.resolve()}", source=f"oci:{layout}:v1")
    dest = tmp_path / "dest"
    bad = imagetool("--policy", policy, "copy", f"oci:{layout}:v1", f"dir:{dest}", check=False)
    assert "rejects every image" in one_line_error(bad)
    # the default still accepts images elsewhere
    other = tmp_path / "other"
    random_image(other, "v1", n_layers=1, size=256)
    imagetool("--policy", policy, "copy", f"oci:{other}:v1", f"dir:{dest}")
    assert (dest / "manifest.json").exists()


def test_missing_signature(tmp_path: Path, keys: tuple[Path, Path, Path], gnupg: GPGHome) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    image = tmp_path / "unsigned"
    imagetool("--insecure-policy", "copy", f"oci:{layout}:v1", f"dir:{image}")
    refused(tmp_path, sigstore_policy(tmp_path, keys[1]), image, "no sigstore signature")
    refused(tmp_path, gpg_policy(tmp_path, gnupg), image, "no simple signature")


def test_bad_policy_files(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    bad = imagetool("--policy", str(tmp_path / "absent.json"), "copy", f"oci:{layout}:v1", f"dir:{tmp_path / 'd'}",
                    check=False)
    assert "reading trust policy" in one_line_error(bad)
    typo = write_policy(tmp_path / "typo.json", [{"type": "signedBy", "keyType": "GPGKeys", "keyPth": "/x"}])
    bad = imagetool("--policy", typo, "copy", f"oci:{layout}:v1", f"dir:{tmp_path / 'd'}", check=False)
    assert "unknown field 'keyPth'" in one_line_error(bad)
    unknown = write_policy(tmp_path / "unknown.json", [{"type": "acceptEverythingPlease"}])
    bad = imagetool("--policy", unknown, "verify", f"oci:{layout}:v1", check=False)
    assert "unknown policy requirement type" in one_line_error(bad)
    assert not (tmp_path / "d").exists()
