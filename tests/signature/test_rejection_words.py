"""A policy rejection on copy reads as skopeo's ("Source image rejected: Invalid GPG signature", "Signature for
identity ... is not accepted", "Running image ... is rejected by policy.", "A signature was required, but no
signature exists"), our detail (scope, requirement, reason) after it; skopeo says the same of the same images."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.gpg import GPGHome
from tests.lib.images import random_image
from tests.lib.registry import Registry
from tests.signature.conftest import write_policy
from tests.signature.test_registry import registries_d


def test_rejections_say_what_skopeo_says(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                         gnupg: GPGHome, other_gpg: GPGHome) -> None:
    host = plain_registry.host
    random_image(tmp_path / "layout", "v1", n_layers=1, size=1024, seed=401)
    conf = registries_d(tmp_path, {"lookaside": f"file://{tmp_path}/sigstore"}, scope=host)
    pushes = {"alice:signed": gnupg, "alice:unsigned": None, "bob:signedbyalice": gnupg, "carol:latest": None,
              "open:latest": None}
    for path, home in pushes.items():
        sign = ["--sign-by", home.fingerprint] if home else []
        imagetool("--insecure-policy", "--registries.d", conf, "copy", "-q", "--dest-tls-verify=false", *sign,
                  f"oci:{tmp_path}/layout:v1", f"docker://{host}/myns/{path}")
    sigs = sorted((tmp_path / "sigstore" / "myns").glob("alice@*"))
    assert len(sigs) == 1  # both alice tags name the same manifest, signed once
    alice_key, bob_key = tmp_path / "alice.gpg", tmp_path / "bob.gpg"
    alice_key.write_bytes(gnupg.export(gnupg.fingerprint))
    bob_key.write_bytes(other_gpg.export(other_gpg.fingerprint))
    signed_by = {"type": "signedBy", "keyType": "GPGKeys"}
    policy = write_policy(tmp_path / "policy.json", [{"type": "reject"}], {"docker": {
        f"{host}/myns/alice": [{**signed_by, "keyPath": str(alice_key)}],
        f"{host}/myns/bob": [{**signed_by, "keyPath": str(bob_key)}],
        f"{host}/myns/open": [{"type": "insecureAcceptAnything"}],
        f"{host}/myns/carol:latest": [{"type": "reject"}],
    }})
    expected = {
        "alice:signed": None,
        # the lookaside signature is per manifest: alice:unsigned finds the one that names alice:signed
        "alice:unsigned": f'Source image rejected: Signature for identity "{host}/myns/alice:signed" is not accepted',
        "bob:signedbyalice": "Source image rejected: Invalid GPG signature",
        "carol:latest": f"Source image rejected: Running image docker://{host}/myns/carol:latest is rejected by "
                        "policy.",
        "open:latest": None,
    }
    for path, words in expected.items():
        ref = f"docker://{host}/myns/{path}"
        argv = ["--policy", policy, "--registries.d", conf, "copy", "--src-tls-verify=false", ref]
        ours = imagetool(*argv, f"dir:{tmp_path}/ours-{path}", check=False, env=gnupg.env())
        theirs = tool(["skopeo", *argv, f"dir:{tmp_path}/theirs-{path}"], check=False,
                      env={**os.environ, **gnupg.env()})
        assert ours.returncode == theirs.returncode == (1 if words else 0), (path, ours.stderr, theirs.stderr)
        if words:
            line = one_line_error(ours)
            assert line.startswith(f"imagetool: {words}"), line
            assert words.replace('"', "") in theirs.stderr  # skopeo 1.9 does not quote the identity yet
            assert "rejected by policy scope" in line  # our detail follows
            assert not (tmp_path / f"ours-{path}").exists()


def test_identity_and_missing_signature_words(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                              gnupg: GPGHome) -> None:
    """A signature claiming another name: skopeo's `Signature for identity "NAME" is not accepted` (newer
    skopeo quotes NAME, 1.9 does not); an image with none: "A signature was required, but no signature exists"."""
    host = plain_registry.host
    random_image(tmp_path / "layout", "v1", n_layers=1, size=1024, seed=402)
    conf = registries_d(tmp_path, {"lookaside": f"file://{tmp_path}/sigstore"}, scope=host)
    imagetool("--insecure-policy", "--registries.d", conf, "copy", "-q", "--dest-tls-verify=false", "--sign-by",
              gnupg.fingerprint, f"oci:{tmp_path}/layout:v1", f"docker://{host}/words/signed:v1")
    # the same signature, copied by skopeo to another repository (it keeps signatures as they are)
    tool(["skopeo", "--insecure-policy", "--registries.d", conf, "copy", "-q", "--src-tls-verify=false",
          "--dest-tls-verify=false", f"docker://{host}/words/signed:v1", f"docker://{host}/words/moved:v1"])
    random_image(tmp_path / "other", "v1", n_layers=1, size=1024, seed=403)
    imagetool("--insecure-policy", "copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/other:v1",
              f"docker://{host}/words/none:v1")
    key = tmp_path / "key.gpg"
    key.write_bytes(gnupg.export(gnupg.fingerprint))
    policy = write_policy(tmp_path / "policy.json", [{"type": "signedBy", "keyType": "GPGKeys",
                                                      "keyPath": str(key)}])
    cases = {"moved:v1": f'Signature for identity "{host}/words/signed:v1" is not accepted',
             "none:v1": "A signature was required, but no signature exists"}
    for path, words in cases.items():
        argv = ["--policy", policy, "--registries.d", conf, "copy", "--src-tls-verify=false",
                f"docker://{host}/words/{path}"]
        line = one_line_error(imagetool(*argv, f"dir:{tmp_path}/o", check=False, env=gnupg.env()))
        assert line.startswith(f"imagetool: Source image rejected: {words} ("), line
        theirs = tool(["skopeo", *argv, f"dir:{tmp_path}/t"], check=False, env={**os.environ, **gnupg.env()})
        assert re.sub(r'\\?"', "", f"Source image rejected: {words}") in theirs.stderr.replace('\\"', "")
