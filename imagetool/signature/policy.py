"""policy.json: which images are trusted, per transport and scope.

A policy has a `default` list of requirements and, under `transports.<name>.<scope>`,
more specific lists; every requirement in the chosen list must accept the image. Parsing
is strict (unknown fields and types are errors), because a misspelt field silently
weakening a trust policy is worse than a refusal to run.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from typing import Any

from imagetool.errors import ImagetoolError, PolicyRejected
from imagetool.reference import DockerReference
from imagetool.reference import parse as parse_reference


class PolicyError(PolicyRejected):
    """The policy file itself is unusable (every image is refused)."""


# -- signed identities


@dataclass(frozen=True)
class MatchRepoDigestOrExact:
    """signedIdentity: the signed reference names the image's repository and, for a tag, the same tag."""

    kind = "matchRepoDigestOrExact"


@dataclass(frozen=True)
class MatchRepository:
    """signedIdentity: the signed reference names the image's repository, whatever its tag or digest."""

    kind = "matchRepository"


@dataclass(frozen=True)
class MatchExact:
    """signedIdentity: the signed reference is the image's reference exactly."""

    kind = "matchExact"


@dataclass(frozen=True)
class ExactReference:
    """signedIdentity: the signed reference is this one reference."""

    reference: DockerReference
    kind = "exactReference"


@dataclass(frozen=True)
class ExactRepository:
    """signedIdentity: the signed reference is in this one repository."""

    repository: DockerReference
    kind = "exactRepository"


@dataclass(frozen=True)
class RemapIdentity:
    """signedIdentity: matchRepoDigestOrExact after `prefix` in the image's reference becomes `signed_prefix`."""

    prefix: str
    signed_prefix: str
    kind = "remapIdentity"


Identity = MatchRepoDigestOrExact | MatchRepository | MatchExact | ExactReference | ExactRepository | RemapIdentity


# -- requirements


@dataclass(frozen=True)
class InsecureAcceptAnything:
    """A requirement every image meets."""

    kind = "insecureAcceptAnything"


@dataclass(frozen=True)
class Reject:
    """A requirement no image meets."""

    kind = "reject"


@dataclass(frozen=True)
class SignedBy:
    """OpenPGP simple signing by one of the keys (the key blobs are read when the policy loads)."""

    keys: tuple[bytes, ...]
    identity: Identity = field(default_factory=MatchRepoDigestOrExact)
    source: str = ""
    kind = "signedBy"


@dataclass(frozen=True)
class FulcioTrust:
    """Certificates Fulcio issued (the CA PEM is read when the policy loads) for one OIDC identity."""

    ca: bytes
    oidc_issuer: str
    subject_email: str


@dataclass(frozen=True)
class PKITrust:
    """Certificates from the user's own CA (roots and optional intermediates, PEM) for an email and/or host."""

    roots: bytes
    intermediates: bytes
    subject_email: str = ""
    subject_hostname: str = ""


@dataclass(frozen=True)
class SigstoreSigned:
    """Exactly one of `keys`, `fulcio`, `pki`; `rekor_keys` beside keys (optional) or fulcio (required)."""

    keys: tuple[bytes, ...]
    identity: Identity = field(default_factory=MatchRepoDigestOrExact)
    source: str = ""
    rekor_keys: tuple[bytes, ...] = ()
    fulcio: FulcioTrust | None = None
    pki: PKITrust | None = None
    kind = "sigstoreSigned"


Requirement = InsecureAcceptAnything | Reject | SignedBy | SigstoreSigned


@dataclass
class Policy:
    """A policy.json: the default requirements, and those of each transport's scopes."""

    default: list[Requirement]
    transports: dict[str, dict[str, list[Requirement]]] = field(default_factory=dict)
    path: str = ""

    def requirements_for(self, transport: str, scopes: list[str]) -> tuple[str, list[Requirement]]:
        """The most specific matching scope and its list; "" (the transport default) is the last scope."""
        table = self.transports.get(transport, {})
        for scope in scopes:
            if scope in table:
                label = f"{transport}:{scope}" if scope else f"{transport} transport default"
                return label, table[scope]
        return "default", self.default


def _fields(obj: Any, where: str, required: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    if not isinstance(obj, dict):
        raise PolicyError(f"{where}: expected a JSON object")
    missing = required - set(obj)
    extra = set(obj) - required - optional
    if missing:
        raise PolicyError(f"{where}: missing field {sorted(missing)[0]!r}")
    if extra:
        raise PolicyError(f"{where}: unknown field {sorted(extra)[0]!r}")
    return obj


def _ref(text: Any, where: str) -> DockerReference:
    if not isinstance(text, str):
        raise PolicyError(f"{where}: expected a string")
    try:
        return parse_reference(text)
    except ImagetoolError as err:
        raise PolicyError(f"{where}: {err}") from err


def parse_identity(obj: Any, where: str) -> Identity:
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind in ("matchRepoDigestOrExact", "matchRepository", "matchExact"):
        _fields(obj, where, {"type"})
        if kind == "matchRepository":
            return MatchRepository()
        return MatchExact() if kind == "matchExact" else MatchRepoDigestOrExact()
    if kind == "exactReference":
        ref = _ref(_fields(obj, where, {"type", "dockerReference"})["dockerReference"], where)
        if ref.is_name_only:
            raise PolicyError(f"{where}: exactReference needs a tag or digest")
        return ExactReference(ref)
    if kind == "exactRepository":
        ref = _ref(_fields(obj, where, {"type", "dockerRepository"})["dockerRepository"], where)
        return ExactRepository(ref.repository())
    if kind == "remapIdentity":
        f = _fields(obj, where, {"type", "prefix", "signedPrefix"})
        for name in ("prefix", "signedPrefix"):
            if not isinstance(f[name], str) or not _valid_prefix(f[name]):
                raise PolicyError(f"{where}: invalid {name} {f[name]!r}")
        return RemapIdentity(f["prefix"], f["signedPrefix"])
    raise PolicyError(f"{where}: unknown signedIdentity type {kind!r}")


def _valid_prefix(prefix: str) -> bool:
    """A host[:port], or a fully qualified host/namespace[/repo] without tag or digest."""
    try:
        ref = parse_reference(prefix if "/" in prefix else prefix + "/x", normalise=False)
    except ImagetoolError:
        return False
    return ref.is_name_only


def _key_blobs(f: dict[str, Any], where: str, base_dir: str, allow_paths: bool) -> tuple[tuple[bytes, ...], str]:
    given = [k for k in ("keyPath", "keyPaths", "keyData") if k in f]
    if len(given) != 1:
        raise PolicyError(f"{where}: exactly one of keyPath{', keyPaths' if allow_paths else ''}, keyData is needed")
    if "keyData" in f:
        try:
            return (base64.b64decode(f["keyData"], validate=True),), "keyData"
        except (binascii.Error, TypeError, ValueError) as err:
            raise PolicyError(f"{where}: keyData is not valid base64") from err
    paths = [f["keyPath"]] if "keyPath" in f else f["keyPaths"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise PolicyError(f"{where}: invalid key path")
    blobs = []
    for p in paths:
        full = os.path.join(base_dir, p) if base_dir else p
        try:
            with open(full, "rb") as fh:
                blobs.append(fh.read())
        except OSError as err:
            raise PolicyError(f"{where}: reading key {full}: {err.strerror or err}") from err
    return tuple(blobs), ", ".join(paths)


def parse_requirement(obj: Any, where: str, base_dir: str = "") -> Requirement:
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "insecureAcceptAnything":
        _fields(obj, where, {"type"})
        return InsecureAcceptAnything()
    if kind == "reject":
        _fields(obj, where, {"type"})
        return Reject()
    if kind == "signedBy":
        f = _fields(obj, where, {"type", "keyType"}, {"keyPath", "keyPaths", "keyData", "signedIdentity"})
        if f["keyType"] != "GPGKeys":
            raise PolicyError(f"{where}: unsupported keyType {f['keyType']!r} (only GPGKeys)")
        keys, source = _key_blobs(f, where, base_dir, True)
        ident = parse_identity(f["signedIdentity"], f"{where}.signedIdentity") if "signedIdentity" in f \
            else MatchRepoDigestOrExact()
        return SignedBy(keys, ident, source)
    if kind == "sigstoreSigned":
        from imagetool.signature.policy_sigstore import parse_sigstore_signed

        f = _fields(obj, where, {"type"}, {"keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
                                          "rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData",
                                          "rekorPublicKeyDatas", "signedIdentity"})
        ident = parse_identity(f["signedIdentity"], f"{where}.signedIdentity") if "signedIdentity" in f \
            else MatchRepoDigestOrExact()
        return parse_sigstore_signed(f, where, base_dir, ident)
    raise PolicyError(f"{where}: unknown policy requirement type {kind!r}")


def _requirements(obj: Any, where: str, base_dir: str) -> list[Requirement]:
    if not isinstance(obj, list) or not obj:
        raise PolicyError(f"{where}: expected a non-empty list of requirements")
    return [parse_requirement(r, f"{where}[{i}]", base_dir) for i, r in enumerate(obj)]


def parse(data: bytes, path: str = "") -> Policy:
    """A Policy from policy.json bytes; relative key paths are read from the policy's directory."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise PolicyError(f"invalid policy {path or 'JSON'}: {err}") from err
    where = path or "policy"
    f = _fields(doc, where, {"default"}, {"transports"})
    base_dir = os.path.dirname(os.path.abspath(path)) if path else ""
    policy = Policy(_requirements(f["default"], f"{where}: default", base_dir), {}, path)
    transports = f.get("transports") or {}
    if not isinstance(transports, dict):
        raise PolicyError(f"{where}: transports must be an object")
    for name, scopes in transports.items():
        if not isinstance(scopes, dict):
            raise PolicyError(f"{where}: transports.{name} must be an object")
        policy.transports[name] = {scope: _requirements(reqs, f"{where}: transports.{name}.{scope!r}", base_dir)
                                   for scope, reqs in scopes.items()}
    return policy


def load(path: str) -> Policy:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise PolicyError(f"reading trust policy {path}: {err.strerror or err}") from err
    return parse(data, path)
