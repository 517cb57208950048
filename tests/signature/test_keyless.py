"""Sigstore with Rekor SETs, Fulcio certificates and X.509 PKI: containers/image's vectors give exactly
the verdicts its README lists; each tampered annotation is refused in one line and a refused copy
writes nothing; combinations containers/image refuses are refused in the policy file."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from imagetool.errors import PolicyRejected
from imagetool.signature.policy import PolicyError
from imagetool.signature.policy_eval import PolicyContext
from imagetool.transports.envelopes import SIGSTORE_MARKER
from tests.lib.cli import imagetool, one_line_error
from tests.signature.conftest import FIXTURES, write_policy
from tests.signature.test_tampering import refused
from tests.signature.test_vectors import judge

KEY_REKOR = FIXTURES / "dir-img-cosign-key-rekor-valid"
FULCIO = FIXTURES / "dir-img-cosign-fulcio-rekor-valid"
PKI = FIXTURES / "dir-img-cosign-pki-valid"
KEY_REPO = "192.168.64.2:5000/cosign-signed/key-1"
FULCIO_REPO = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"
PKI_REPO = "localhost:5000/test"
COSIGN, COSIGN2, REKOR = (str(FIXTURES / n) for n in ("cosign.pub", "cosign2.pub", "rekor.pub"))
BY_REPO = {"type": "matchRepository"}

SET = "dev.sigstore.cosign/bundle"
CERT = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"


def fulcio(**over: object) -> dict:
    return {"caPath": str(FIXTURES / "fulcio_v1.crt.pem"), "oidcIssuer": "https://github.com/login/oauth",
            "subjectEmail": "mitr@redhat.com", **over}


def pki(**over: object) -> dict:
    return {"caRootsPath": str(FIXTURES / "pki_root_crts.pem"),
            "caIntermediatesPath": str(FIXTURES / "pki_intermediate_crts.pem"),
            "subjectEmail": "qiwan@redhat.com", "subjectHostname": "myhost.example.com", **over}


def req(identity: dict | None = None, **fields: object) -> dict:
    return {"type": "sigstoreSigned", **fields, "signedIdentity": identity or BY_REPO}


def read_sig(image: Path) -> dict:
    return json.loads((image / "signature-1").read_bytes()[len(SIGSTORE_MARKER):])


def edited(tmp_path: Path, image: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of a vector image whose signature went through `edit(envelope dict)`."""
    out = tmp_path / name
    out.mkdir()
    shutil.copyfile(image / "manifest.json", out / "manifest.json")
    doc = read_sig(image)
    edit(doc)
    (out / "signature-1").write_bytes(SIGSTORE_MARKER + json.dumps(doc).encode())
    return out


def accepted(tmp_path: Path, image: Path, requirement: dict, repo: str) -> str:
    verdict = judge(tmp_path, image, requirement, f"{repo}:latest")
    assert verdict.startswith("accepted by policy scope default: sigstoreSigned: signed as " + repo), verdict
    return verdict


def rejected(tmp_path: Path, image: Path, requirement: dict, repo: str, reason: str) -> None:
    with pytest.raises(PolicyRejected) as err:
        judge(tmp_path, image, requirement, f"{repo}:latest")
    assert reason in str(err.value), str(err.value)


# -- key + Rekor

@pytest.mark.parametrize("keys", [{"keyPath": COSIGN2}, {"keyPaths": [COSIGN2]}, {"keyPaths": [COSIGN, COSIGN2]},
                                  {"keyPaths": [COSIGN2, COSIGN]},
                                  {"keyDatas": [base64.b64encode(Path(COSIGN).read_bytes()).decode(),
                                                base64.b64encode(Path(COSIGN2).read_bytes()).decode()]}])
@pytest.mark.parametrize("rekor", [{"rekorPublicKeyPath": REKOR}, {"rekorPublicKeyPaths": [REKOR]},
                                   {"rekorPublicKeyPaths": [COSIGN, REKOR]}, {"rekorPublicKeyPaths": [REKOR, COSIGN]},
                                   {"rekorPublicKeyData": base64.b64encode(Path(REKOR).read_bytes()).decode()}])
def test_key_rekor_accepted(tmp_path: Path, keys: dict, rekor: dict) -> None:
    accepted(tmp_path, KEY_REKOR, req(**keys, **rekor), KEY_REPO)


def test_key_rekor_rejected(tmp_path: Path) -> None:
    rejected(tmp_path, KEY_REKOR, req(keyPath=COSIGN), KEY_REPO, "not made by a trusted key")
    rejected(tmp_path, KEY_REKOR, req(keyPath=COSIGN, rekorPublicKeyPath=REKOR), KEY_REPO,
             "the public key or certificate in the Rekor SET does not match")
    rejected(tmp_path, KEY_REKOR, req(keyPath=COSIGN2, rekorPublicKeyPath=COSIGN), KEY_REPO,
             "the Rekor SET is not signed by a trusted Rekor key")
    # without a Rekor key the SET is not looked at: the key alone accepts
    accepted(tmp_path, KEY_REKOR, req(keyPath=COSIGN2), KEY_REPO)


# -- Fulcio + Rekor

def test_fulcio_rekor_accepted(tmp_path: Path) -> None:
    accepted(tmp_path, FULCIO, req(fulcio=fulcio(), rekorPublicKeyPath=REKOR), FULCIO_REPO)
    data = {"caData": base64.b64encode((FIXTURES / "fulcio_v1.crt.pem").read_bytes()).decode()}
    f = fulcio(**data)
    del f["caPath"]
    accepted(tmp_path, FULCIO, req(fulcio=f, rekorPublicKeyPaths=[COSIGN, REKOR]), FULCIO_REPO)
    # the chain annotation removed: its certificates, given as caData, are the roots
    chain = read_sig(FULCIO)["annotations"][CHAIN]
    no_chain = edited(tmp_path, FULCIO, "no-chain", lambda d: d["annotations"].pop(CHAIN))
    f = fulcio(caData=base64.b64encode(chain.encode()).decode())
    del f["caPath"]
    accepted(tmp_path, no_chain, req(fulcio=f, rekorPublicKeyPath=REKOR), FULCIO_REPO)


def test_fulcio_rekor_rejected(tmp_path: Path) -> None:
    good = req(fulcio=fulcio(), rekorPublicKeyPath=REKOR)
    rejected(tmp_path, FULCIO, req(fulcio=fulcio(subjectEmail="this-does-not-match@example.com"),
                                   rekorPublicKeyPath=REKOR), FULCIO_REPO,
             "the certificate is not for email 'this-does-not-match@example.com' (it names 'mitr@redhat.com')")
    rejected(tmp_path, FULCIO, req(fulcio=fulcio(oidcIssuer="https://accounts.example.com"),
                                   rekorPublicKeyPath=REKOR), FULCIO_REPO,
             "the certificate's OIDC issuer is 'https://github.com/login/oauth', not 'https://accounts.example.com'")
    rejected(tmp_path, FULCIO, req(fulcio=fulcio(), rekorPublicKeyPath=COSIGN), FULCIO_REPO,
             "the Rekor SET is not signed by a trusted Rekor key")
    # a root that is not Fulcio's
    rejected(tmp_path, FULCIO, req(fulcio=fulcio(caPath=str(FIXTURES / "pki_root_crts.pem")),
                                   rekorPublicKeyPath=REKOR), FULCIO_REPO, "the signing certificate is not trusted")
    for name in (SET, CERT, CHAIN):
        image = edited(tmp_path, FULCIO, f"without-{name.rsplit('/', 1)[1]}", lambda d, n=name: d["annotations"].pop(n))
        reason = "not trusted" if name == CHAIN else f"missing {name} annotation"
        rejected(tmp_path, image, good, FULCIO_REPO, reason)


def test_fulcio_certificate_judged_at_the_set_time_not_now(tmp_path: Path) -> None:
    """The certificate lived ten minutes in 2023: accepted because the SET's integratedTime falls inside."""
    from imagetool.signature import pem

    leaf = pem.leaf_certificate(read_sig(FULCIO)["annotations"][CERT].encode())
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() <= 600
    assert leaf.not_valid_after_utc.year == 2023
    accepted(tmp_path, FULCIO, req(fulcio=fulcio(), rekorPublicKeyPath=REKOR), FULCIO_REPO)


# -- PKI

def test_pki_accepted(tmp_path: Path) -> None:
    accepted(tmp_path, PKI, req(pki=pki()), PKI_REPO)
    accepted(tmp_path, PKI, req(pki=pki(subjectHostname="")), PKI_REPO)
    only_host = pki()
    del only_host["subjectEmail"]
    accepted(tmp_path, PKI, req(pki=only_host), PKI_REPO)
    # without the chain annotation, caIntermediatesPath provides the intermediate
    no_chain = edited(tmp_path, PKI, "no-chain", lambda d: d["annotations"].pop(CHAIN))
    accepted(tmp_path, no_chain, req(pki=pki()), PKI_REPO)


def test_pki_rejected(tmp_path: Path) -> None:
    no_cert = edited(tmp_path, PKI, "no-cert", lambda d: d["annotations"].pop(CERT))
    rejected(tmp_path, no_cert, req(pki=pki()), PKI_REPO, f"missing {CERT} annotation")
    rejected(tmp_path, PKI, req(pki=pki(subjectEmail="someone@example.com")), PKI_REPO,
             "the certificate is not for email 'someone@example.com'")
    rejected(tmp_path, PKI, req(pki=pki(subjectHostname="other.example.com")), PKI_REPO,
             "the certificate is not for host 'other.example.com' (it names 'myhost.example.com')")
    # neither the chain nor caIntermediatesPath: no path to the root
    no_chain = edited(tmp_path, PKI, "no-chain", lambda d: d["annotations"].pop(CHAIN))
    inter_less = pki()
    del inter_less["caIntermediatesPath"]
    rejected(tmp_path, no_chain, req(pki=inter_less), PKI_REPO, "the signing certificate is not trusted")
    # the Fulcio root does not vouch for this PKI
    rejected(tmp_path, PKI, req(pki=pki(caRootsPath=str(FIXTURES / "fulcio_v1.crt.pem"))), PKI_REPO,
             "the signing certificate is not trusted")


# -- tampering, through `verify` and `copy` (one line, nothing written)

def _flip_b64(text: str) -> str:
    raw = bytearray(base64.b64decode(text.replace("\n", "")))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _edit_set(doc: dict) -> None:
    bundle = json.loads(doc["annotations"][SET])
    bundle["Payload"]["integratedTime"] += 1
    doc["annotations"][SET] = json.dumps(bundle)


def _edit_set_signature(doc: dict) -> None:
    bundle = json.loads(doc["annotations"][SET])
    bundle["SignedEntryTimestamp"] = _flip_b64(bundle["SignedEntryTimestamp"])
    doc["annotations"][SET] = json.dumps(bundle)


def _edit_pem(name: str, index: int = 0):  # type: ignore[no-untyped-def]
    """Change one byte of the index-th certificate of an annotation (in its signature value)."""
    def edit(doc: dict) -> None:
        text = doc["annotations"][name]
        blocks = text.split("-----END CERTIFICATE-----")
        head, body = blocks[index].split("-----BEGIN CERTIFICATE-----\n")
        der = bytearray(base64.b64decode(body.replace("\n", "")))
        der[-5] ^= 1  # inside the issuer's signature: the certificate still parses, the signature fails
        b64 = base64.b64encode(bytes(der)).decode()
        blocks[index] = head + "-----BEGIN CERTIFICATE-----\n" + \
            "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n"
        doc["annotations"][name] = "-----END CERTIFICATE-----".join(blocks)
    return edit


def _edit_payload(doc: dict) -> None:
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["optional"] = {"creator": "someone else"}
    doc["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()


def _edit_signature(doc: dict) -> None:
    doc["annotations"]["dev.cosignproject.cosign/signature"] = \
        _flip_b64(doc["annotations"]["dev.cosignproject.cosign/signature"])


FULCIO_TAMPERING = [
    ("set-time", _edit_set, "the Rekor SET is not signed by a trusted Rekor key"),
    ("set-signature", _edit_set_signature, "the Rekor SET is not signed by a trusted Rekor key"),
    ("set-removed", lambda d: d["annotations"].pop(SET), f"missing {SET} annotation"),
    ("certificate", _edit_pem(CERT), "does not match"),
    ("certificate-removed", lambda d: d["annotations"].pop(CERT), f"missing {CERT} annotation"),
    ("chain", _edit_pem(CHAIN), "the signing certificate is not trusted"),
    ("chain-removed", lambda d: d["annotations"].pop(CHAIN), "the signing certificate is not trusted"),
    ("payload", _edit_payload, "the payload in the Rekor SET does not match"),
    ("signature", _edit_signature, "the signature in the Rekor SET does not match"),
]


@pytest.mark.parametrize("name,edit,reason", FULCIO_TAMPERING, ids=[t[0] for t in FULCIO_TAMPERING])
def test_fulcio_tampering_refused_by_verify_and_copy(tmp_path: Path, name: str, edit, reason: str) -> None:  # type: ignore[no-untyped-def]
    image = edited(tmp_path, FULCIO, name, edit)
    policy = write_policy(tmp_path / "policy.json", [req({"type": "exactRepository", "dockerRepository": FULCIO_REPO},
                                                         fulcio=fulcio(), rekorPublicKeyPath=REKOR)])
    refused(tmp_path, policy, image, reason)


KEY_TAMPERING = [
    ("set-body", _edit_set, "the Rekor SET is not signed by a trusted Rekor key"),
    ("set-removed", lambda d: d["annotations"].pop(SET), f"missing {SET} annotation"),
    ("payload", _edit_payload, "the payload in the Rekor SET does not match"),
    ("signature", _edit_signature, "the signature in the Rekor SET does not match"),
]


@pytest.mark.parametrize("name,edit,reason", KEY_TAMPERING, ids=[t[0] for t in KEY_TAMPERING])
def test_key_rekor_tampering_refused(tmp_path: Path, name: str, edit, reason: str) -> None:  # type: ignore[no-untyped-def]
    image = edited(tmp_path, KEY_REKOR, name, edit)
    policy = write_policy(tmp_path / "policy.json", [req({"type": "exactRepository", "dockerRepository": KEY_REPO},
                                                         keyPath=COSIGN2, rekorPublicKeyPath=REKOR)])
    refused(tmp_path, policy, image, reason)


PKI_TAMPERING = [
    ("certificate", _edit_pem(CERT), "the signing certificate is not trusted"),
    ("chain-intermediate", _edit_pem(CHAIN), "the signing certificate is not trusted"),
    ("payload", _edit_payload, "the signature was not made by the certificate's key"),
    ("signature", _edit_signature, "the signature was not made by the certificate's key"),
]


@pytest.mark.parametrize("name,edit,reason", PKI_TAMPERING, ids=[t[0] for t in PKI_TAMPERING])
def test_pki_tampering_refused(tmp_path: Path, name: str, edit, reason: str) -> None:  # type: ignore[no-untyped-def]
    image = edited(tmp_path, PKI, name, edit)
    p = pki()
    del p["caIntermediatesPath"]  # the chain annotation is the only way to the root
    policy = write_policy(tmp_path / "policy.json", [req({"type": "exactRepository", "dockerRepository": PKI_REPO},
                                                         pki=p)])
    refused(tmp_path, policy, image, reason)


def test_cli_verdicts_on_the_vectors(tmp_path: Path) -> None:
    """`verify` accepts each valid vector; `copy` gets past the policy (the vectors hold no layer, so
    it stops at the first missing blob, which is not a policy error) and refuses the bad ones first."""
    cases = [
        (KEY_REKOR, KEY_REPO, {"keyPath": COSIGN2, "rekorPublicKeyPath": REKOR}, {"keyPath": COSIGN}),
        (FULCIO, FULCIO_REPO, {"fulcio": fulcio(), "rekorPublicKeyPath": REKOR},
         {"fulcio": fulcio(subjectEmail="this-does-not-match@example.com"), "rekorPublicKeyPath": REKOR}),
        (PKI, PKI_REPO, {"pki": pki()}, {"pki": pki(subjectEmail="other@example.com")}),
    ]
    for image, repo, good, bad in cases:
        ident = {"type": "exactRepository", "dockerRepository": repo}
        ok_policy = write_policy(tmp_path / "ok.json", [req(ident, **good)])
        bad_policy = write_policy(tmp_path / "bad.json", [req(ident, **bad)])
        out = imagetool("verify", "--policy", ok_policy, f"dir:{image}")
        assert "accepted by policy scope default: sigstoreSigned: signed as " + repo in out.stdout
        manifest = json.loads((image / "manifest.json").read_text())
        blobs = [d["digest"].split(":")[1][:12] for d in (manifest["config"], *manifest["layers"])]
        dest = tmp_path / f"copied-{image.name}"
        copied = imagetool("--policy", ok_policy, "copy", f"dir:{image}", f"dir:{dest}", check=False)
        line = one_line_error(copied)
        assert "rejected" not in line and any(b in line for b in blobs), line  # a blob the vector lacks
        assert not dest.exists()
        refusal = imagetool("--policy", bad_policy, "copy", f"dir:{image}", f"dir:{dest}", check=False)
        assert "rejected by policy scope default: sigstoreSigned" in one_line_error(refusal)
        assert not dest.exists()


# -- the policy file

COMBINATIONS = [
    ({"keyPath": COSIGN, "fulcio": fulcio(), "rekorPublicKeyPath": REKOR},
     "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki is needed (got keyPath and fulcio)"),
    ({"fulcio": fulcio(), "pki": pki()}, "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki"),
    ({"keyPath": COSIGN, "keyPaths": [COSIGN]}, "(got keyPath and keyPaths)"),
    ({}, "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki is needed"),
    ({"fulcio": fulcio()}, "fulcio needs a Rekor public key"),
    ({"pki": pki(), "rekorPublicKeyPath": REKOR}, "rekorPublicKeyPath cannot be used with pki"),
    ({"keyPath": COSIGN, "rekorPublicKeyPath": REKOR, "rekorPublicKeyPaths": [REKOR]},
     "at most one of rekorPublicKeyPath, rekorPublicKeyPaths"),
    ({"fulcio": fulcio(caData="AAAA"), "rekorPublicKeyPath": REKOR}, "caPath and caData cannot be used together"),
    ({"fulcio": {"caPath": str(FIXTURES / "fulcio_v1.crt.pem"), "subjectEmail": "a@b"}, "rekorPublicKeyPath": REKOR},
     "oidcIssuer must be a non-empty string"),
    ({"fulcio": fulcio(subjectEmail=""), "rekorPublicKeyPath": REKOR}, "subjectEmail must be a non-empty string"),
    ({"fulcio": fulcio(extra=1), "rekorPublicKeyPath": REKOR}, "unknown field 'extra'"),
    ({"pki": {"caRootsPath": str(FIXTURES / "pki_root_crts.pem")}},
     "pki needs at least one of subjectEmail and subjectHostname"),
    ({"pki": {"subjectEmail": "a@b"}}, "one of caRootsPath and caRootsData is required"),
    ({"pki": pki(caIntermediatesData="AAAA")}, "caIntermediatesPath and caIntermediatesData cannot be used together"),
    ({"keyPath": COSIGN, "rekorPublicKeyData": "not base64!"}, "rekorPublicKeyData is not valid base64"),
]


@pytest.mark.parametrize("fields,error", COMBINATIONS)
def test_policy_refuses_combinations(tmp_path: Path, fields: dict, error: str) -> None:
    doc = {"default": [{"type": "sigstoreSigned", **fields}]}
    with pytest.raises(PolicyError, match=None) as err:
        PolicyContext.from_bytes(json.dumps(doc).encode(), "policy.json")
    assert error in str(err.value), str(err.value)


def test_cli_refuses_a_bad_policy_in_one_line(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.json", [{"type": "sigstoreSigned", "keyPath": COSIGN, "fulcio": fulcio(),
                                                 "rekorPublicKeyPath": REKOR}])
    bad = imagetool("verify", "--policy", policy, f"dir:{FULCIO}", check=False)
    line = one_line_error(bad)
    assert "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki is needed" in line
