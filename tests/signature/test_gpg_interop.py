"""GPG simple signing: what imagetool signs skopeo verifies, and what skopeo signs imagetool verifies."""

from __future__ import annotations

import json
from pathlib import Path

from imagetool.digest import Digest
from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.gpg import GPGHome, gpg
from tests.lib.images import random_image
from tests.signature.conftest import write_policy

IDENTITY = "registry.example.com/team/app:1.0"


def signed_by_policy(path: Path, home: GPGHome, fingerprint: str, identity: dict | None = None) -> str:
    key = path.parent / f"{fingerprint}.gpg"
    key.write_bytes(home.export(fingerprint))
    req = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key),
           "signedIdentity": identity or {"type": "exactReference", "dockerReference": IDENTITY}}
    return write_policy(path, [req])


def skopeo_copy(*args: str, env: dict[str, str], check: bool = True):  # type: ignore[no-untyped-def]
    import os
    return tool(["skopeo", *args], check=check, env={**os.environ, **env})


def signed_dir(tmp_path: Path, home: GPGHome) -> Path:
    """An image copied into dir: by imagetool and signed there."""
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=2, size=2048)
    out = tmp_path / "signed"
    imagetool("--insecure-policy", "copy", "--sign-by", home.fingerprint, "--sign-identity", IDENTITY,
              f"oci:{layout}:v1", f"dir:{out}", env=home.env())
    return out


def test_skopeo_verifies_imagetool_signature(tmp_path: Path, gnupg: GPGHome) -> None:
    out = signed_dir(tmp_path, gnupg)
    sig = (out / "signature-1").read_bytes()
    assert sig[:1] != b"\0" and not (out / "signature-2").exists()
    policy = signed_by_policy(tmp_path / "policy.json", gnupg, gnupg.fingerprint)
    # skopeo refuses to copy the image unless it accepts the signature
    skopeo_copy("--policy", policy, "copy", f"dir:{out}", f"dir:{tmp_path / 'checked'}", env=gnupg.env())
    assert (tmp_path / "checked" / "signature-1").read_bytes() == sig
    # and skopeo refuses it for another identity
    other = signed_by_policy(tmp_path / "other.json", gnupg, gnupg.fingerprint,
                             {"type": "exactReference", "dockerReference": "registry.example.com/team/app:2.0"})
    bad = skopeo_copy("--policy", other, "copy", f"dir:{out}", f"dir:{tmp_path / 'nope'}", env=gnupg.env(),
                      check=False)
    assert bad.returncode != 0 and "ignature" in bad.stderr


def test_imagetool_verifies_skopeo_signature(tmp_path: Path, gnupg: GPGHome) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=1024)
    out = tmp_path / "by-skopeo"
    skopeo_copy("--insecure-policy", "copy", "--sign-by", gnupg.fingerprint, "--sign-identity", IDENTITY,
                f"oci:{layout}:v1", f"dir:{out}", env=gnupg.env())
    assert (out / "signature-1").exists()
    policy = signed_by_policy(tmp_path / "policy.json", gnupg, gnupg.fingerprint)
    ok = imagetool("verify", "--policy", policy, f"dir:{out}")
    assert gnupg.fingerprint in ok.stdout and IDENTITY in ok.stdout
    # copying checks the policy too, and the signature travels with the image
    imagetool("--policy", policy, "copy", f"dir:{out}", f"dir:{tmp_path / 'again'}")
    assert (tmp_path / "again" / "signature-1").read_bytes() == (out / "signature-1").read_bytes()
    # matchRepoDigestOrExact against the identity given on the command line
    repo_policy = signed_by_policy(tmp_path / "repo.json", gnupg, gnupg.fingerprint,
                                   {"type": "matchRepoDigestOrExact"})
    imagetool("verify", "--policy", repo_policy, "--identity", IDENTITY, f"dir:{out}")
    bad = imagetool("verify", "--policy", repo_policy, "--identity", "registry.example.com/team/app:2.0",
                    f"dir:{out}", check=False)
    assert "claims identity registry.example.com/team/app:1.0" in one_line_error(bad)


def test_untrusted_key_rejected(tmp_path: Path, gnupg: GPGHome, other_gpg: GPGHome) -> None:
    out = signed_dir(tmp_path, gnupg)
    policy = signed_by_policy(tmp_path / "policy.json", other_gpg, other_gpg.fingerprint)
    bad = imagetool("verify", "--policy", policy, f"dir:{out}", check=False)
    assert bad.returncode == 1
    assert "untrusted key" in one_line_error(bad)
    # a rejected copy writes nothing
    dest = tmp_path / "dest"
    bad = imagetool("--policy", policy, "copy", f"dir:{out}", f"dir:{dest}", check=False)
    assert "untrusted key" in one_line_error(bad)
    assert not dest.exists()


def test_passphrase_file_trailing_newline(tmp_path: Path, gnupg: GPGHome) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=512)
    pass_file = tmp_path / "pass"
    pass_file.write_text(GPGHome.PASSPHRASE + "\n")
    out = tmp_path / "signed"
    imagetool("--insecure-policy", "copy", "--sign-by", gnupg.protected, "--sign-passphrase-file", str(pass_file),
              "--sign-identity", IDENTITY, f"oci:{layout}:v1", f"dir:{out}")
    policy = signed_by_policy(tmp_path / "policy.json", gnupg, gnupg.protected)
    skopeo_copy("--policy", policy, "copy", f"dir:{out}", f"dir:{tmp_path / 'checked'}", env=gnupg.env())
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    # a wrong passphrase or a key not in the keyring fails before anything is written
    for flags, expect in ((["--sign-by", gnupg.protected, "--sign-passphrase-file", str(wrong)], "Bad passphrase"),
                          (["--sign-by", "0123456789ABCDEF0123456789ABCDEF01234567"], "no secret key")):
        for dest in (tmp_path / "x", tmp_path / "y"):
            transport = "dir" if dest.name == "x" else "oci"
            bad = imagetool("--insecure-policy", "copy", *flags, "--sign-identity", IDENTITY, f"oci:{layout}:v1",
                            f"{transport}:{dest}", check=False)
            assert expect in one_line_error(bad)
            assert not dest.exists()


def test_sign_by_uses_exactly_that_key(tmp_path: Path, gnupg: GPGHome) -> None:
    """gpg falls back to its default key for an unknown --default-key; the signature must not."""
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=256)
    out = tmp_path / "signed"
    pass_file = tmp_path / "pass"
    pass_file.write_text(GPGHome.PASSPHRASE)
    # the protected key is not the keyring's default (the first key is)
    imagetool("--insecure-policy", "copy", "--sign-by", gnupg.protected, "--sign-passphrase-file", str(pass_file),
              "--sign-identity", IDENTITY, f"oci:{layout}:v1", f"dir:{out}", env=gnupg.env())
    only_protected = signed_by_policy(tmp_path / "protected.json", gnupg, gnupg.protected)
    ok = imagetool("verify", "--policy", only_protected, f"dir:{out}")
    assert gnupg.protected in ok.stdout
    only_default = signed_by_policy(tmp_path / "default.json", gnupg, gnupg.fingerprint)
    bad = imagetool("verify", "--policy", only_default, f"dir:{out}", check=False)
    assert "not trusted" in one_line_error(bad) or "untrusted key" in one_line_error(bad)


def test_standalone_sign_verified_by_skopeo(tmp_path: Path, gnupg: GPGHome) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                "digest": "sha256:" + "a" * 64, "size": 2}, "layers": []}).encode())
    sig = tmp_path / "sig"
    imagetool("standalone-sign", "-o", str(sig), str(manifest), "docker.io/library/busybox:latest",
              gnupg.fingerprint)
    out = tool(["skopeo", "standalone-verify", str(manifest), "docker.io/library/busybox:latest",
                gnupg.fingerprint, str(sig)])
    digest = Digest.of(manifest.read_bytes())
    assert f"Signature verified, digest {digest}" in out.stdout
    bad = tool(["skopeo", "standalone-verify", str(manifest), "docker.io/library/busybox:other",
                gnupg.fingerprint, str(sig)], check=False)
    assert bad.returncode != 0


def test_skopeo_standalone_sign_verified_by_imagetool(tmp_path: Path, gnupg: GPGHome) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                         b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'
                         + b"b" * 64 + b'","size":2},"layers":[]}')
    sig = tmp_path / "sig"
    tool(["skopeo", "standalone-sign", "-o", str(sig), str(manifest), "busybox:1.36", gnupg.fingerprint])
    out = imagetool("standalone-verify", str(manifest), "busybox:1.36", gnupg.fingerprint, str(sig))
    digest = Digest.of(manifest.read_bytes())
    assert out.stdout == f"Signature verified, digest {digest}\n"
    # tampering: another manifest, another reference, another key, a truncated signature
    changed = tmp_path / "changed.json"
    changed.write_bytes(manifest.read_bytes().replace(b'"size":2', b'"size":3'))
    bad = imagetool("standalone-verify", str(changed), "busybox:1.36", gnupg.fingerprint, str(sig), check=False)
    assert "signature is for manifest" in one_line_error(bad)
    bad = imagetool("standalone-verify", str(manifest), "busybox:1.37", gnupg.fingerprint, str(sig), check=False)
    assert "signature is for docker.io/library/busybox:1.36" in one_line_error(bad)
    bad = imagetool("standalone-verify", str(manifest), "busybox:1.36", gnupg.protected, str(sig), check=False)
    assert "not trusted" in one_line_error(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(sig.read_bytes()[: len(sig.read_bytes()) // 2])
    bad = imagetool("standalone-verify", str(manifest), "busybox:1.36", gnupg.fingerprint, str(truncated),
                    check=False)
    assert "invalid OpenPGP signature" in one_line_error(bad)


def test_message_with_two_signatures_rejected(tmp_path: Path, gnupg: GPGHome) -> None:
    """One OpenPGP message signed by two keys is refused, by skopeo and by imagetool, even with one trusted."""
    out = signed_dir(tmp_path, gnupg)
    payload = gpg(gnupg.home, "--decrypt", str(out / "signature-1")).stdout
    assert json.loads(payload)["critical"]["identity"]["docker-reference"] == IDENTITY
    twice = gpg(gnupg.home, "--pinentry-mode", "loopback", "--passphrase", GPGHome.PASSPHRASE, "-u", gnupg.fingerprint,
                "-u", gnupg.protected, "--sign", input=payload).stdout
    (out / "signature-1").write_bytes(twice)
    policy = signed_by_policy(tmp_path / "policy.json", gnupg, gnupg.fingerprint)
    bad = skopeo_copy("--policy", policy, "copy", f"dir:{out}", f"dir:{tmp_path / 'by-skopeo'}", env=gnupg.env(),
                      check=False)
    assert bad.returncode != 0 and "signature count 2" in bad.stderr
    bad = imagetool("verify", "--policy", policy, f"dir:{out}", check=False)
    assert "carries 2 signatures" in one_line_error(bad)
