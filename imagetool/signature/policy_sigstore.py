"""policy.json's `sigstoreSigned`: keys, Rekor keys, Fulcio and PKI, with containers/image's rules.

Exactly one trust source: keyPath, keyPaths, keyData, keyDatas, fulcio or pki. At most one
Rekor key source (rekorPublicKeyPath, ...Paths, ...Data, ...Datas); fulcio needs one, pki
refuses any. `fulcio` is {caPath | caData, oidcIssuer, subjectEmail}; `pki` is {caRootsPath |
caRootsData, [caIntermediatesPath | caIntermediatesData], subjectEmail and/or subjectHostname}.
`...Data` fields are base64, as Go's JSON encodes bytes. Files are read when the policy loads.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from imagetool.signature import policy as p

KEY_SOURCES = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
REKOR_SOURCES = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")


def _read(path: Any, where: str, base_dir: str, what: str) -> bytes:
    if not isinstance(path, str) or not path:
        raise p.PolicyError(f"{where}: {what} must be a non-empty string")
    full = os.path.join(base_dir, path) if base_dir else path
    try:
        with open(full, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise p.PolicyError(f"{where}: reading {what} {full}: {err.strerror or err}") from err


def _data(text: Any, where: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise p.PolicyError(f"{where}: {what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise p.PolicyError(f"{where}: {what} is not valid base64") from err


def _list(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise p.PolicyError(f"{where}: {what} must be a non-empty list")
    return value


def _blobs(f: dict[str, Any], names: tuple[str, str, str, str], where: str, base_dir: str) \
        -> tuple[tuple[bytes, ...], str]:
    """The key blobs of whichever of (path, paths, data, datas) is given, and a label naming them."""
    path, paths, data, datas = names
    if path in f:
        return (_read(f[path], where, base_dir, path),), str(f[path])
    if paths in f:
        items = _list(f[paths], where, paths)
        return tuple(_read(x, where, base_dir, paths) for x in items), ", ".join(map(str, items))
    if data in f:
        return (_data(f[data], where, data),), data
    if datas in f:
        return tuple(_data(x, where, datas) for x in _list(f[datas], where, datas)), datas
    return (), ""


def _one_of(f: dict[str, Any], path: str, data: str, where: str, base_dir: str, required: bool) -> bytes:
    if path in f and data in f:
        raise p.PolicyError(f"{where}: {path} and {data} cannot be used together")
    if path in f:
        return _read(f[path], where, base_dir, path)
    if data in f:
        return _data(f[data], where, data)
    if required:
        raise p.PolicyError(f"{where}: one of {path} and {data} is required")
    return b""


def _string(f: dict[str, Any], name: str, where: str, required: bool) -> str:
    value = f.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise p.PolicyError(f"{where}: {name} must be a non-empty string" if required
                            else f"{where}: {name} must be a string")
    return value


def parse_fulcio(obj: Any, where: str, base_dir: str) -> p.FulcioTrust:
    f = p._fields(obj, where, set(), {"caPath", "caData", "oidcIssuer", "subjectEmail"})
    ca = _one_of(f, "caPath", "caData", where, base_dir, True)
    return p.FulcioTrust(ca, _string(f, "oidcIssuer", where, True), _string(f, "subjectEmail", where, True))


def parse_pki(obj: Any, where: str, base_dir: str) -> p.PKITrust:
    f = p._fields(obj, where, set(), {"caRootsPath", "caRootsData", "caIntermediatesPath",
                                      "caIntermediatesData", "subjectEmail", "subjectHostname"})
    roots = _one_of(f, "caRootsPath", "caRootsData", where, base_dir, True)
    intermediates = _one_of(f, "caIntermediatesPath", "caIntermediatesData", where, base_dir, False)
    email = _string(f, "subjectEmail", where, False)
    host = _string(f, "subjectHostname", where, False)
    if not email and not host:
        raise p.PolicyError(f"{where}: pki needs at least one of subjectEmail and subjectHostname")
    return p.PKITrust(roots, intermediates, email, host)


def parse_sigstore_signed(f: dict[str, Any], where: str, base_dir: str, identity: p.Identity) -> p.SigstoreSigned:
    sources = [k for k in KEY_SOURCES if k in f]
    if len(sources) != 1:
        raise p.PolicyError(f"{where}: exactly one of {', '.join(KEY_SOURCES)} is needed"
                            + (f" (got {' and '.join(sources)})" if sources else ""))
    rekor = [k for k in REKOR_SOURCES if k in f]
    if len(rekor) > 1:
        raise p.PolicyError(f"{where}: at most one of {', '.join(REKOR_SOURCES)} can be used")
    if "fulcio" in f and not rekor:
        raise p.PolicyError(f"{where}: fulcio needs a Rekor public key (one of {', '.join(REKOR_SOURCES)})")
    if "pki" in f and rekor:
        raise p.PolicyError(f"{where}: {rekor[0]} cannot be used with pki")
    rekor_keys, rekor_label = _blobs(f, REKOR_SOURCES, where, base_dir)  # type: ignore[arg-type]
    fulcio = parse_fulcio(f["fulcio"], f"{where}.fulcio", base_dir) if "fulcio" in f else None
    pki = parse_pki(f["pki"], f"{where}.pki", base_dir) if "pki" in f else None
    keys, label = _blobs(f, KEY_SOURCES[:4], where, base_dir)  # type: ignore[arg-type]
    if fulcio is not None:
        label = f"Fulcio {fulcio.subject_email} from {fulcio.oidc_issuer}"
    elif pki is not None:
        label = "PKI " + " ".join(x for x in (pki.subject_email, pki.subject_hostname) if x)
    elif rekor_keys:
        label += f" with Rekor key {rekor_label}"
    return p.SigstoreSigned(keys, identity, label, rekor_keys, fulcio, pki)
