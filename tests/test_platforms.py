"""Index entries chosen for a platform as containerd's matcher does: normalized variants, then fallbacks."""

from __future__ import annotations

import pytest

from imagetool.descriptor import Descriptor, Platform, best_instance, platform_rank
from imagetool.digest import Digest

P = Platform.parse


@pytest.mark.parametrize(("want", "have", "rank"), [
    ("linux/arm64", "linux/arm64/v8", 0),      # arm64 is arm64/v8
    ("linux/arm64/v8", "linux/arm64", 0),
    ("linux/arm", "linux/arm/v7", 0),          # arm is arm/v7
    ("linux/arm/v7", "linux/arm/v6", 1),       # v7 runs v6, then v5 programs
    ("linux/arm/v7", "linux/arm/v5", 2),
    ("linux/arm/v6", "linux/arm/v7", None),    # never a newer variant
    ("linux/arm/v7", "linux/arm/v8", None),
    ("linux/amd64/v3", "linux/amd64/v2", 1),
    ("linux/amd64/v2", "linux/amd64", 1),      # v1 is plain amd64
    ("linux/amd64", "linux/386", None),        # another architecture is never taken
    ("linux/arm64", "linux/arm/v7", None),
    ("linux/arm64", "windows/arm64", None),
])
def test_rank(want: str, have: str, rank: int | None) -> None:
    assert platform_rank(P(want), P(have)) == rank


def _entry(n: int, platform: str) -> Descriptor:
    return Descriptor("application/vnd.oci.image.manifest.v1+json", Digest.of(bytes([n])), 1, platform=P(platform))


def test_best_instance_prefers_exact_then_newest_fallback() -> None:
    entries = [_entry(1, "linux/arm/v5"), _entry(2, "linux/arm/v6"), _entry(3, "linux/arm64/v8"),
               _entry(4, "linux/amd64")]
    assert best_instance(P("linux/arm/v7"), entries) == entries[1]
    assert best_instance(P("linux/arm/v6"), entries) == entries[1]
    assert best_instance(P("linux/arm/v5"), entries) == entries[0]
    assert best_instance(P("linux/arm64"), entries) == entries[2]
    assert best_instance(P("linux/s390x"), entries) is None
    assert best_instance(P("linux/arm/v7"), [*entries, _entry(5, "linux/arm/v7")]).digest == Digest.of(bytes([5]))
