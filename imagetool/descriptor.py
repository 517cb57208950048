"""Descriptors and platforms: the typed pointers every manifest and index is made of."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field, replace
from collections.abc import Iterable
from typing import Any, Mapping

from imagetool.digest import Digest
from imagetool.errors import InvalidDigest, ManifestError

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Platform:
    """The platform an image of an index runs on (GOARCH, GOOS and their refinements)."""

    architecture: str
    os: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        features = d.get("os.features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ManifestError("platform: os.features is not a list of strings")
        return cls(
            architecture=str(d.get("architecture", "")),
            os=str(d.get("os", "")),
            variant=str(d.get("variant", "") or ""),
            os_version=str(d.get("os.version", "") or ""),
            os_features=tuple(features),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/arch[/variant]`, as in --platform linux/arm64/v8."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
         "i386": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


def host_platform(os: str | None = None, arch: str | None = None, variant: str | None = None) -> Platform:
    machine = _platform.machine()
    guessed_variant = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8"}.get(machine, "")
    return Platform(
        architecture=arch or _ARCH.get(machine, machine),
        os=os or "linux",
        variant=variant if variant is not None else ("" if arch else guessed_variant),
    )


def normalized(p: Platform) -> Platform:
    """containerd's normal form of a platform: arm64 v8 is arm64, arm is arm/v7, amd64 v1 is amd64."""
    arch, variant = p.architecture.lower(), p.variant.lower()
    arch = {"aarch64": "arm64", "x86_64": "amd64", "x86-64": "amd64", "i386": "386"}.get(arch, arch)
    if arch == "arm64" and variant in ("8", "v8", "v8.0"):
        variant = ""
    elif arch == "amd64" and variant == "v1":
        variant = ""
    elif arch == "arm" and variant in ("", "5", "6", "7", "8"):
        variant = f"v{variant or 7}"
    elif arch == "386":
        variant = ""
    return replace(p, architecture=arch, variant=variant)


def _fallbacks(want: Platform) -> list[str]:
    """The variants an image for `want` may be, best first (containerd's platform vector within one
    architecture: arm/v7 runs v7, v6, v5 programs; amd64/v3 runs v3, v2, v1)."""
    low = {"arm": 5, "amd64": 1}.get(want.architecture)
    level = want.variant[1:] if want.variant.startswith("v") else ""
    if low is None or not level.isdigit():
        return [want.variant]
    return ["" if want.architecture == "amd64" and n == 1 else f"v{n}" for n in range(int(level), low - 1, -1)]


def platform_rank(want: Platform, have: Platform | None) -> int | None:
    """How well an image of platform `have` fits `want`: 0 is exact, larger is a fallback; None: it does not.

    Variants as containerd's matcher compares them (normalized, then older variants of the same
    architecture); an entry or a request without a variant fits any as a last resort, as
    containers/image accepts it. Other architectures (386 for amd64, arm for arm64) are not taken: a
    build would label their programs with a platform they are not."""
    if have is None:
        return None
    w, h = normalized(want), normalized(have)
    if h.os != w.os or h.architecture != w.architecture:
        return None
    order = _fallbacks(w)
    if h.variant in order:
        return order.index(h.variant)
    if not want.variant or not have.variant:
        return len(order)
    return None


def platform_matches(want: Platform, have: Platform | None) -> bool:
    """Whether an index entry's platform fits what we want (see platform_rank)."""
    return platform_rank(want, have) is not None


def best_instance(want: Platform, entries: Iterable[Descriptor]) -> Descriptor | None:
    """The entry that fits `want` best (the first of equally good ones), None if none fits."""
    ranked = [(r, i, d) for i, d in enumerate(entries) if (r := platform_rank(want, d.platform)) is not None]
    return min(ranked, key=lambda t: (t[0], t[1]))[2] if ranked else None


def annotations_of(doc: Mapping[str, Any], what: str) -> dict[str, str]:
    """A document's "annotations", which must be a map of strings."""
    value = doc.get("annotations") or {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ManifestError(f"{what}: annotations are not a map of strings")
    return dict(value)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or an index says of a blob it points to."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> Descriptor:
        if not isinstance(d, Mapping):
            raise ManifestError("descriptor is not a JSON object")
        try:
            digest = Digest.parse(d["digest"])
            size = d["size"]
        except KeyError as err:
            raise ManifestError(f"descriptor without {err.args[0]}") from None  # the KeyError is the lookup
        except InvalidDigest as err:
            raise ManifestError(f"descriptor digest: {err}") from err
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"descriptor {digest} has invalid size {size!r}")
        plat = d.get("platform")
        urls = d.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"descriptor {digest}: urls are not a list of strings")
        return cls(
            media_type=str(d.get("mediaType", "")),
            digest=digest,
            size=size,
            annotations=annotations_of(d, f"descriptor {digest}"),
            platform=Platform.from_dict(plat) if isinstance(plat, Mapping) else None,
            urls=tuple(urls),
            artifact_type=str(d.get("artifactType", "") or ""),
        )

    def to_oci_dict(self) -> dict[str, Any]:
        """OCI field order: mediaType, digest, size, urls, annotations, platform, artifactType."""
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    def to_docker_dict(self) -> dict[str, Any]:
        """Docker schema 2 field order: mediaType, size, digest, urls, platform."""
        d: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": str(self.digest)}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        return d

    def with_(self, **changes: Any) -> Descriptor:
        return replace(self, **changes)

    @property
    def ref_name(self) -> str | None:
        return self.annotations.get(ANNOTATION_REF_NAME)
