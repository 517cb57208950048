"""`copy --referrers`: after the image, the artifacts that refer to it (signatures, SBOMs), as regctl does."""

from __future__ import annotations

from typing import Any

from imagetool.digest import Digest
from imagetool.errors import Unsupported
from imagetool.manifest import Index


def check_referrers(src: Any, dst: Any) -> None:
    if not all(hasattr(side, "client") and hasattr(side, "repo") for side in (src, dst)):
        raise Unsupported("--referrers copies between registries only")


def carry_referrers(src: Any, dst: Any, src_raw: bytes, parsed: Any, out_raw: bytes, progress: Any) -> int:
    """Copy the referrers of the top manifest and, for an index, of each instance; the number copied.

    Referrers name their subject by digest, so the copy must have kept the manifest as it was."""
    from imagetool.registry.referrers import copy_referrers

    check_referrers(src, dst)
    if out_raw != src_raw:
        raise Unsupported("--referrers needs the manifest unchanged (its referrers name it by digest)")
    subjects = [Digest.of(src_raw)]
    if isinstance(parsed, Index):
        subjects += [d.digest for d in parsed.manifests]
    total = 0
    for subject in subjects:
        copied = copy_referrers(src.client, src.repo, dst.client, dst.repo, subject)
        total += len(copied)
        if progress:
            for desc in copied:
                progress.line(f"Copying referrer {desc.digest} ({desc.artifact_type or desc.media_type})")
    return total
