"""skopeo's sync YAML (`sync --src yaml`): registries -> what to copy from each, checked and typed.

The format, as skopeo reads it:

    registry.example.com:
      images:                  # repository -> tags or digests; an empty list means every tag
        busybox: []
        redis: ["1.0", "sha256:..."]
      images-by-tag-regex:     # repository -> a regular expression the tags must match
        nginx: ^1\\.13\\.
      credentials: {username: john, password: secret}
      tls-verify: false
      cert-dir: /home/john/certs

Types are checked at every level, as skopeo's Go decoder checks them (a list where a mapping
belongs, a tag list that is a string, a tls-verify that is no boolean are errors), so a wrong
file is a one-line ConfigError naming the line, never a crash. Unknown keys are ignored, as
skopeo ignores them. Scalars taken as strings (registries, repositories, tags, credentials,
cert-dir) keep the file's own text: an unquoted tag 1.10 is "1.10", as in skopeo, not 1.1.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from imagetool.errors import ConfigError
from imagetool.transports.base import SystemContext

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""


@dataclass(frozen=True)
class RegistrySync:
    """What to copy from one registry, and how to reach it."""

    registry: str
    #: repository -> tags or digests ("sha256:..."); an empty tuple means every tag
    images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: repository -> the pattern a tag must match (searched, as Go's MatchString does)
    images_by_tag_regex: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    credentials: Credentials | None = None
    #: None: as the command line says
    tls_verify: bool | None = None
    cert_dir: str | None = None

    def system_context(self, base: SystemContext) -> SystemContext:
        """`base` (the --src-* flags) with this registry's settings on top."""
        creds = self.credentials
        return dataclasses.replace(
            base,
            tls_verify=base.tls_verify if self.tls_verify is None else self.tls_verify,
            cert_dir=self.cert_dir or base.cert_dir,
            creds=(creds.username, creds.password) if creds and creds.username else base.creds,
        )


@dataclass(frozen=True)
class SyncConfig:
    registries: tuple[RegistrySync, ...] = ()


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node, what: str) -> ConfigError:
        return ConfigError(f"sync file {self.source}, line {node.start_mark.line + 1}: {what}")

    def _kind(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if node.tag == _NULL:
            return "empty"
        return f"{node.tag.rsplit(':', 1)[-1]} {node.value!r}"

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]] | None:
        """A mapping's (key, value) nodes; None when the node is empty (null)."""
        if _is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping, not {self._kind(node)}")
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str:
        """A scalar as the file spells it (Go decodes any scalar into a string that way)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self.fail(node, f"{what} must be a string, not {self._kind(node)}")
        return str(node.value)

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        if _is_null(node):
            return None
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.fail(node, f"{what} must be true or false, not {self._kind(node)}")
        return SafeConstructor.bool_values[node.value.lower()]

    def strings(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if _is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list of tags or digests, not {self._kind(node)}")
        return tuple(self.string(item, f"{what}: each tag") for item in node.value)

    def registry(self, name: str, node: yaml.Node) -> RegistrySync:
        images: dict[str, tuple[str, ...]] = {}
        by_regex: dict[str, re.Pattern[str]] = {}
        credentials: Credentials | None = None
        tls_verify: bool | None = None
        cert_dir: str | None = None
        for key_node, value in self.mapping(node, f"registry {name}") or []:
            key = self.string(key_node, f"registry {name}: a key")
            where = f"registry {name}: {key}"
            if key == "images":
                images = {self.string(repo, f"{where}: a repository"): self.strings(tags, f"{where}: {repo.value}")
                          for repo, tags in self.mapping(value, where) or []}
            elif key == "images-by-tag-regex":
                by_regex = {self.string(repo, f"{where}: a repository"): self.pattern(rx, f"{where}: {repo.value}")
                            for repo, rx in self.mapping(value, where) or []}
            elif key == "credentials":
                creds = {self.string(k, f"{where}: a key"): v for k, v in self.mapping(value, where) or []}
                credentials = Credentials(
                    self.string(creds["username"], f"{where}: username") if "username" in creds else "",
                    self.string(creds["password"], f"{where}: password") if "password" in creds else "")
            elif key == "tls-verify":
                tls_verify = self.boolean(value, where)
            elif key == "cert-dir":
                cert_dir = None if _is_null(value) else self.string(value, where)
            # any other key is ignored, as skopeo's decoder ignores it
        return RegistrySync(name, images, by_regex, credentials, tls_verify, cert_dir)

    def pattern(self, node: yaml.Node, what: str) -> re.Pattern[str]:
        text = self.string(node, what)
        try:
            return re.compile(text)
        except re.error as err:
            raise self.fail(node, f"{what}: invalid regular expression {text!r}: {err}") from err


def parse(text: str, source: str = "<sync file>") -> SyncConfig:
    """The sync YAML `text` (`source` names it in errors) as typed settings; ConfigError when malformed."""
    stream = io.StringIO(text)
    stream.name = source  # type: ignore[attr-defined]  # what PyYAML's error marks call the file
    try:
        root = yaml.compose(stream, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"sync file {source} is not valid YAML: {' '.join(str(err).split())}") from err
    if root is None:
        return SyncConfig()
    check = _Checker(source)
    entries = check.mapping(root, "the file") or []
    return SyncConfig(tuple(check.registry(check.string(key, "a registry name"), value) for key, value in entries))


def load(path: str | Path) -> SyncConfig:
    """Read and check the sync YAML file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"reading sync file {path}: {err}") from err
    return parse(text, str(path))
