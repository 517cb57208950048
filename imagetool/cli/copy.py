"""`imagetool copy SRC DEST` with skopeo's flags."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import (daemon_host_option, policy_from_flags, registry_options, shared_blob_dir_option,
                                   signers_from_flags, signing_options, system_context, write_digestfile)
from imagetool.errors import UsageError


@click.command()
@click.argument("source")
@click.argument("destination")
@click.option("-a", "--all", "all_", is_flag=True, help="Copy every image of an index.")
@click.option("--multi-arch", type=click.Choice(["system", "all", "index-only"]), default=None,
              help="What to copy of an index (default system).")
@click.option("-f", "--format", "format_", type=click.Choice(["oci", "v2s2"]), default=None,
              help="Manifest type for the destination.")
@click.option("--preserve-digests", is_flag=True, help="Fail rather than change any digest.")
@click.option("--dest-compress", is_flag=True, help="Compress layers (gzip unless --dest-compress-format).")
@click.option("--dest-decompress", is_flag=True, help="Store layers uncompressed.")
@click.option("--dest-compress-format", type=click.Choice(["gzip", "zstd", "zstd:chunked"]), default=None,
              help="Layer compression for the destination.")
@click.option("--dest-compress-level", type=int, default=None, help="Compression level.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--digestfile", metavar="PATH", help="Write the destination manifest digest to PATH.")
@click.option("--additional-tag", "additional_tags", multiple=True, metavar="NAME:TAG",
              help="Another name for the image in a docker-archive destination (repeatable).")
@click.option("--remove-signatures", is_flag=True, help="Do not copy signatures.")
@signing_options()
@click.option("--sign-referrers", is_flag=True,
              help="Store the sigstore signature as an OCI 1.1 referrer of the image (registries only).")
@click.option("--referrers", is_flag=True, help="Also copy the image's referrers (signatures, SBOMs).")
@click.option("--authfile", metavar="PATH", help="Auth file for both sides.")
@click.option("--max-parallel", type=click.IntRange(1, 64), default=6, help="Blobs copied at once.")
@registry_options("src", retries=False)
@registry_options("dest")
@shared_blob_dir_option("src")
@shared_blob_dir_option("dest")
@click.option("--dest-oci-accept-uncompressed-layers", is_flag=True,
              help="Keep uncompressed layers uncompressed in an oci: destination.")
@click.option("--dest-precompute-digests", is_flag=True,
              help="Hash recompressed layers before uploading, to skip those the registry has.")
@daemon_host_option("src")
@daemon_host_option("dest")
@click.pass_context
def copy(ctx: click.Context, source: str, destination: str, **flags: Any) -> None:
    """Copy an image from SOURCE to DESTINATION (oci:, oci-archive:, docker-archive:, dir:, docker://,
    containers-storage:, or a local store name)."""
    from imagetool.copy import CopyOptions, copy_image
    from imagetool.copy.progress import Progress
    from imagetool.reference import parse as parse_reference
    from imagetool.transports import parse_image_name

    if flags["dest_compress"] and flags["dest_decompress"]:
        raise UsageError("--dest-compress and --dest-decompress are mutually exclusive")
    multi_arch = flags["multi_arch"] or ("all" if flags["all_"] else "system")
    if flags["all_"] and flags["multi_arch"] not in (None, "all"):
        raise UsageError("--all conflicts with --multi-arch " + flags["multi_arch"])
    src_ref = parse_image_name(source)
    dst_ref = parse_image_name(destination)
    dest_ctx = system_context(ctx, "dest_", **flags)
    dest_ctx.docker_archive_additional_tags = tuple(_tagged(t) for t in flags["additional_tags"])
    dest_ctx.oci_accept_uncompressed_layers = flags["dest_oci_accept_uncompressed_layers"]
    dest_ctx.docker_precompute_digests = flags["dest_precompute_digests"]
    compression = flags["dest_compress_format"] or ("gzip" if flags["dest_compress"] else None)
    options = CopyOptions(
        src_ctx=system_context(ctx, "src_", **flags),
        dest_ctx=dest_ctx,
        multi_arch=multi_arch,
        format=flags["format_"],
        preserve_digests=flags["preserve_digests"],
        compression=compression,
        compression_level=flags["dest_compress_level"],
        remove_signatures=flags["remove_signatures"],
        sign_identity=parse_reference(flags["sign_identity"]) if flags["sign_identity"] else None,
        policy=policy_from_flags(ctx),
        decompress=flags["dest_decompress"],
        max_parallel=flags["max_parallel"],
        progress=Progress(quiet=flags["quiet"]),
    )
    options.signers = signers_from_flags(flags)
    options.referrers = flags["referrers"]
    if flags["sign_referrers"]:
        if not flags["sign_by_sigstore_private_key"]:
            raise UsageError("--sign-referrers needs --sign-by-sigstore-private-key")
        for signer in options.signers:
            if hasattr(signer, "as_referrer"):
                signer.as_referrer = True
    result = copy_image(src_ref, dst_ref, options)
    write_digestfile(flags["digestfile"], result.digest)


def _tagged(text: str) -> Any:
    """An --additional-tag: a name with an explicit tag, as skopeo requires."""
    from imagetool.reference import parse as parse_reference

    named = parse_reference(text)
    if named.tag is None or named.digest is not None:
        raise UsageError(f"additional tag {text!r} must be NAME:TAG")
    return named
