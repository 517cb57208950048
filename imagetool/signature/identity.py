"""Does the identity a signature claims fit the image being checked? (policy `signedIdentity`)"""

from __future__ import annotations

from imagetool.errors import ImagetoolError
from imagetool.reference import DockerReference
from imagetool.reference import parse as parse_reference
from imagetool.signature import policy as p


def _repo_digest_or_exact(image: DockerReference, signed: DockerReference) -> bool:
    if image.digest is not None:
        return signed.name == image.name
    if image.tag is not None:
        return str(signed) == str(image)
    return False


def _has_prefix(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


def _remap(image: DockerReference, rule: p.RemapIdentity) -> DockerReference:
    """The image reference with `prefix` replaced by `signedPrefix`, when the prefix applies."""
    if not _has_prefix(image.name, rule.prefix):
        return image
    text = rule.signed_prefix + str(image)[len(rule.prefix):]
    try:
        return parse_reference(text)
    except ImagetoolError:
        return image


def matches(rule: p.Identity, image: DockerReference | None, signed: DockerReference) -> bool:
    """Whether `signed` (from a signature) is acceptable for `image` under `rule`."""
    if isinstance(rule, p.ExactReference):
        return str(signed) == str(rule.reference)
    if isinstance(rule, p.ExactRepository):
        return signed.name == rule.repository.name
    if image is None:
        return False
    if isinstance(rule, p.MatchRepoDigestOrExact):
        return _repo_digest_or_exact(image, signed)
    if isinstance(rule, p.MatchRepository):
        return signed.name == image.name
    if isinstance(rule, p.MatchExact):
        if image.is_name_only or signed.is_name_only:
            return False
        return str(signed) == str(image)
    if isinstance(rule, p.RemapIdentity):
        return _repo_digest_or_exact(_remap(image, rule), signed)
    raise AssertionError(f"unknown identity rule {rule!r}")


def describe(rule: p.Identity) -> str:
    if isinstance(rule, p.ExactReference):
        return f"exactReference {rule.reference}"
    if isinstance(rule, p.ExactRepository):
        return f"exactRepository {rule.repository}"
    if isinstance(rule, p.RemapIdentity):
        return f"remapIdentity {rule.prefix} -> {rule.signed_prefix}"
    return rule.kind


def needs_image_reference(rule: p.Identity) -> bool:
    return not isinstance(rule, (p.ExactReference, p.ExactRepository))
