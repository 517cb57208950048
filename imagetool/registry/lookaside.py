"""Lookaside signature storage for registries, configured by registries.d YAML files.

Each `*.yaml` in the directory may have `default-docker:` and `docker: {<scope>: ...}`
sections with `lookaside` (read), `lookaside-staging` (write) and the older spellings
`sigstore` / `sigstore-staging`, plus `use-sigstore-attachments`. As in containers/image, each
setting is looked up on its own, most specific scope first (the reference with its tag or digest,
the repository, its namespaces, the host, `*.domain` wildcards, then `default-docker`): a scope
that leaves a setting out defers to the next one for it. Signature N (1-based) of the manifest
with digest D lives at `<base>/<path>@<alg>=<hex>/signature-N`, where <path> is the
repository without its host. Reading works over file:// and http(s)://; writing, like
containers/image, only to file://.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from imagetool.digest import Digest
from imagetool.errors import RegistryError, SignatureError
from imagetool.reference import DockerReference, policy_namespaces

USER_DIR = "~/.config/containers/registries.d"
SYSTEM_DIR = "/etc/containers/registries.d"
MAX_SIGNATURE = 4 << 20
MAX_SIGNATURES = 128
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Lookaside:
    """Where a repository's signatures are read from and written to."""

    read_url: str | None = None
    write_url: str | None = None
    #: sigstore signatures as sha256-<hex>.sig images; off unless configured, as in containers/image
    use_sigstore_attachments: bool = False


def default_dir() -> str:
    user = os.path.expanduser(USER_DIR)
    return user if os.path.isdir(user) else SYSTEM_DIR


@dataclass(frozen=True)
class _Section:
    """One `docker:` scope or `default-docker:` as written; None is "not set here"."""

    read_url: str | None = None
    write_url: str | None = None
    use_sigstore_attachments: bool | None = None


def _section(doc: dict[str, Any], where: str) -> _Section:
    if not isinstance(doc, dict):
        raise SignatureError(f"{where}: expected a mapping")
    known = {"lookaside", "lookaside-staging", "sigstore", "sigstore-staging", "use-sigstore-attachments"}
    unknown = set(doc) - known
    if unknown:
        raise SignatureError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise SignatureError(f"{where}: lookaside URLs must be strings")
        if value and not value.startswith(("file://", "http://", "https://")):
            raise SignatureError(f"{where}: {key} must be a file://, http:// or https:// URL, not {value!r}")
    read = doc.get("lookaside") or doc.get("sigstore") or None
    write = doc.get("lookaside-staging") or doc.get("sigstore-staging") or read
    attach = doc.get("use-sigstore-attachments")
    if attach is not None and not isinstance(attach, bool):
        raise SignatureError(f"{where}: use-sigstore-attachments must be true or false")
    return _Section(read, write, attach)


@dataclass
class RegistriesD:
    """registries.d: where signatures of each scope are read and written (lookaside URLs, sigstore attachments)."""

    default: _Section | None
    scopes: dict[str, _Section]

    @classmethod
    def load(cls, directory: str | None) -> RegistriesD:
        """Every *.yaml in `directory` (None: the user's, else the system's); a missing directory is empty."""
        root = Path(directory or default_dir())
        default: _Section | None = None
        scopes: dict[str, _Section] = {}
        if not root.is_dir():
            return cls(None, {})
        import yaml  # only when there is configuration to read: it is slow to import

        for path in sorted(root.glob("*.yaml")):
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
                raise SignatureError(f"reading {path}: {err}") from err
            if not isinstance(doc, dict):
                raise SignatureError(f"{path}: expected a mapping at the top level")
            if "default-docker" in doc:
                if default is not None:
                    raise SignatureError(f"{path}: default-docker is configured in more than one file")
                default = _section(doc["default-docker"] or {}, f"{path}: default-docker")
            for scope, section in (doc.get("docker") or {}).items():
                if scope in scopes:
                    raise SignatureError(f"{path}: docker scope {scope!r} is configured in more than one file")
                scopes[str(scope)] = _section(section or {}, f"{path}: docker.{scope}")
        return cls(default, scopes)

    def for_reference(self, ref: DockerReference) -> Lookaside:
        """Each setting from the most specific scope that sets it (containers/image's lookup)."""
        chain = [self.scopes[s] for s in policy_namespaces(ref) if s in self.scopes]
        if self.default is not None:
            chain.append(self.default)
        read = next((c.read_url for c in chain if c.read_url), None)
        write = next((c.write_url for c in chain if c.write_url), None)
        attach = next((c.use_sigstore_attachments for c in chain if c.use_sigstore_attachments is not None), False)
        return Lookaside(read, write, attach)


def signature_url(base: str, ref: DockerReference, digest: Digest, index: int) -> str:
    """URL of signature number `index` (0-based) of `digest` in repository `ref`."""
    return f"{base.rstrip('/')}/{ref.path}@{digest.algorithm}={digest.hex}/signature-{index + 1}"


def _file_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise SignatureError(f"unsupported file URL {url!r}: it names a host")
    return Path(urllib.parse.unquote(parsed.path))


def _read_file(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIGNATURE + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise SignatureError(f"reading signature {path}: {err.strerror or err}") from err
    if len(data) > MAX_SIGNATURE:
        raise SignatureError(f"signature {path} is larger than {MAX_SIGNATURE} bytes")
    return data


def _read_http(url: str) -> bytes | None:
    import requests

    try:
        with requests.get(url, stream=True, timeout=HTTP_TIMEOUT) as resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise RegistryError(f"reading signature {url}: HTTP {resp.status_code}")
            data = b""
            for chunk in resp.iter_content(65536):
                data += chunk
                if len(data) > MAX_SIGNATURE:
                    raise SignatureError(f"signature {url} is larger than {MAX_SIGNATURE} bytes")
            return data
    except requests.RequestException as err:
        raise RegistryError(f"reading signature {url}: {err}") from err


def read_signatures(base: str, ref: DockerReference, digest: Digest) -> list[bytes]:
    """signature-1, -2, ... until the first one missing."""
    scheme = urllib.parse.urlparse(base).scheme
    if scheme not in ("file", "http", "https"):
        raise SignatureError(f"unsupported lookaside URL scheme in {base!r}")
    out: list[bytes] = []
    for index in range(MAX_SIGNATURES):
        url = signature_url(base, ref, digest, index)
        data = _read_file(_file_path(url)) if scheme == "file" else _read_http(url)
        if data is None:
            break
        out.append(data)
    return out


def write_signatures(base: str, ref: DockerReference, digest: Digest, signatures: Sequence[bytes]) -> None:
    """Replace the stored signatures of `digest` with `signatures` (file:// only), each written atomically."""
    if urllib.parse.urlparse(base).scheme != "file":
        raise SignatureError(f"writing signatures to {base!r} is not supported (only file:// lookaside)")
    for index, data in enumerate(signatures):
        path = _file_path(signature_url(base, ref, digest, index))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise SignatureError(f"writing signature {path}: {err.strerror or err}") from err
    # later signatures from an earlier, longer list would otherwise be read as ours
    for index in range(len(signatures), MAX_SIGNATURES):
        path = _file_path(signature_url(base, ref, digest, index))
        try:
            path.unlink()
        except FileNotFoundError:
            break
        except OSError as err:
            raise SignatureError(f"removing stale signature {path}: {err.strerror or err}") from err
