"""`imagetool push IMAGE [DESTINATION]`: buildah's push, a copy out of the local store (docker:// by default)."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import (policy_from_flags, registry_options, signers_from_flags, signing_options,
                                   system_context, write_digestfile)


@click.command()
@click.argument("image")
@click.argument("destination", required=False)
@click.option("--all", "all_", is_flag=True, help="Push every image of a multi-platform image.")
@click.option("-f", "--format", "format_", type=click.Choice(["oci", "v2s2"]), default=None,
              help="Manifest type for the destination.")
@click.option("--compression-format", type=click.Choice(["gzip", "zstd", "zstd:chunked"]), default=None,
              help="Recompress layers with this format.")
@click.option("--compression-level", type=int, default=None, help="Compression level.")
@click.option("-D", "--disable-compression", is_flag=True, help="Push layers uncompressed.")
@click.option("--digestfile", metavar="PATH", help="Write the pushed manifest's digest to PATH.")
@click.option("--remove-signatures", is_flag=True, help="Do not copy signatures.")
@signing_options(identity=False)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@registry_options()
@click.pass_context
def push(ctx: click.Context, image: str, destination: str | None, all_: bool, format_: str | None,
         compression_format: str | None, compression_level: int | None, disable_compression: bool,
         digestfile: str | None, remove_signatures: bool, quiet: bool, **flags: Any) -> None:
    """Copy IMAGE from the local store to DESTINATION (docker:// unless another transport is named;
    default: docker://IMAGE)."""
    from imagetool.copy import CopyOptions, copy_image
    from imagetool.copy.progress import Progress
    from imagetool.errors import UsageError
    from imagetool.transports import parse_image_name
    from imagetool.transports.local import parse as parse_local

    if disable_compression and compression_format:
        raise UsageError("--disable-compression conflicts with --compression-format")
    source = parse_local(image)
    if destination is None:
        if source.named is None:
            raise UsageError(f"{image} is an image ID: say where to push it")
        destination = f"docker://{source.named}"
    sys_ctx = system_context(ctx, **flags)
    options = CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, multi_arch="all" if all_ else "system",
                          format=format_, compression=compression_format, compression_level=compression_level,
                          decompress=disable_compression, remove_signatures=remove_signatures,
                          policy=policy_from_flags(ctx), signers=signers_from_flags(flags),
                          progress=Progress(quiet=quiet))
    result = copy_image(source, parse_image_name(destination, default="docker"), options)
    write_digestfile(digestfile, result.digest)
