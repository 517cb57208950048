"""The copy pipeline: one entry point that knows only the source and destination protocols."""

from __future__ import annotations

from imagetool.copy.options import ACCEPT_ANYTHING, CopyOptions, CopyResult, PolicyChecker
from imagetool.manifest import Index, parse
from imagetool.errors import PolicyRejected
from imagetool.transports.base import ImageReference

__all__ = ["ACCEPT_ANYTHING", "CopyOptions", "CopyResult", "copy_image"]


def _default_policy() -> PolicyChecker:
    """The policy containers/image applies when none is named: the user's, else the system's."""
    from imagetool.signature.policy_eval import PolicyContext

    return PolicyContext.load(None, False)


def copy_image(src_ref: ImageReference, dst_ref: ImageReference, options: CopyOptions | None = None) \
        -> CopyResult:
    """Copy an image (or index) from `src_ref` to `dst_ref`.

    The trust policy (`options.policy`, else the default one) is evaluated before the
    destination is opened, so a rejected image is written nowhere; the destination is
    committed only after every blob and manifest it names is stored.
    """
    # the pipeline (blob chain, thread pools) is loaded here: importing the package for its instance
    # choice and config reading (inspect, build) leaves it alone
    from imagetool.copy.instances import choose_instance, get_instance
    from imagetool.copy.multiple import copy_index
    from imagetool.copy.single import copy_single

    options = options or CopyOptions()
    progress = options.progress
    policy = options.policy if options.policy is not None else _default_policy()
    src = src_ref.open_source(options.src_ctx)
    try:
        raw, mt = src.get_manifest()
        parsed = parse(raw, mt)
        try:
            verdict = policy.check(src_ref, src, raw, options.src_ctx.registries_d)
        except PolicyRejected as err:
            if getattr(err, "headline", None) is None:
                raise
            raise PolicyRejected(f"Source image rejected: {err}") from err  # skopeo's words: scripts match them
        if progress:
            progress.line("Getting image source signatures")
        dst = dst_ref.open_destination(options.dest_ctx)
        try:
            if options.referrers:
                from imagetool.copy.referrers import check_referrers

                check_referrers(src, dst)  # before anything is written
            if isinstance(parsed, Index) and options.multi_arch == "system" and not options.platforms:
                desc = choose_instance(parsed, options.src_ctx)
                raw_i, mt_i = get_instance(src, desc)
                copied = copy_single(src, dst, dst_ref, raw_i, mt_i, options, desc.digest)
            elif isinstance(parsed, Index):
                copied = copy_index(src, dst, dst_ref, parsed, options)
            else:
                copied = copy_single(src, dst, dst_ref, raw, parsed.media_type, options)
            dst.commit()
            if options.referrers:
                from imagetool.copy.referrers import carry_referrers

                carry_referrers(src, dst, raw, parsed, copied.raw, progress)
        finally:
            dst.close()
    finally:
        src.close()
    return CopyResult(copied.raw, copied.media_type, verdict)
