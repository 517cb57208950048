"""Docker reference grammar (distribution/reference): parse, normalise, print familiar names."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from imagetool.digest import Digest
from imagetool.errors import InvalidDigest, InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_NAME_MAX = 255


@dataclass(frozen=True)
class DockerReference:
    """A fully qualified name with an optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        return self.path.removeprefix(OFFICIAL_PREFIX) if self.path.count("/") == 1 else self.path

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + str(self.digest)
        return s

    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + str(self.digest)
        return s

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> DockerReference:
        """A name with neither tag nor digest means :latest, as docker and skopeo read it."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def repository(self) -> DockerReference:
        return DockerReference(self.domain, self.path)


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and (("." in first or ":" in first) or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, normalise: bool = True) -> DockerReference:
    """Parse a docker reference; `normalise` adds docker.io and library/ like the docker CLI.

    With normalise=False the domain must be explicit (skopeo's rule for `docker://` is the
    normalised one; OCI layout ref names are not references at all).
    """
    if not text:
        raise InvalidReference("empty image reference")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference {text!r}: contains white space")
    rest, digest = text, None
    if "@" in rest:
        rest, _, dtext = rest.partition("@")
        try:
            digest = Digest.parse(dtext)
        except InvalidDigest as err:
            raise InvalidReference(f"invalid reference {text!r}: {err}") from err
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid reference {text!r}: invalid tag {tag!r}")
    if not rest:
        raise InvalidReference(f"invalid reference {text!r}: no repository name")
    if normalise:
        domain, path = _split_domain(rest)
    else:
        domain, _, path = rest.partition("/")
        if not path:
            raise InvalidReference(f"invalid reference {text!r}: no registry domain")
    if not _DOMAIN.match(domain):
        raise InvalidReference(f"invalid reference {text!r}: invalid registry domain {domain!r}")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            if component.lower() != component and _COMPONENT.match(component.lower()):
                raise InvalidReference(f"invalid reference {text!r}: repository name must be lowercase")
            raise InvalidReference(f"invalid reference {text!r}: invalid repository name component "
                                   f"{component!r}")
    if len(f"{domain}/{path}") > _NAME_MAX:
        raise InvalidReference(f"invalid reference {text!r}: name longer than {_NAME_MAX} characters")
    return DockerReference(domain, path, tag, digest)


def is_short(text: str) -> bool:
    """A name without a registry domain (`app`, `team/app:1`): what the local store reads as localhost/NAME
    first, then docker.io/library/NAME."""
    first, slash, _ = text.partition("@")[0].partition("/")
    return not (slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first))


def local_candidates(text: str) -> list[DockerReference]:
    """The names a local-store lookup of `text` tries, in order (:latest by default)."""
    named = parse(text).with_default_tag()
    return [parse(f"localhost/{text}").with_default_tag(), named] if is_short(text) else [named]


def policy_namespaces(ref: DockerReference) -> list[str]:
    """Policy scopes for a docker reference, most specific first (containers/image's order).

    `host/ns/repo:tag` -> host/ns/repo:tag, host/ns/repo, host/ns, host, and wildcard
    host scopes (*.example.com, *.com) for dotted hosts.
    """
    scopes: list[str] = []
    if ref.tag or ref.digest:
        scopes.append(str(ref.repository()) + (f":{ref.tag}" if ref.tag else f"@{ref.digest}"))
    name = ref.name
    while True:
        scopes.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    host = ref.domain.split(":")[0]
    labels = host.split(".")
    if len(labels) > 1 and not host.replace(".", "").isdigit():
        for i in range(1, len(labels)):
            scopes.append("*." + ".".join(labels[i:]))
    return scopes
