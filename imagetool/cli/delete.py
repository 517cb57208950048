"""`imagetool delete IMAGE`: remove a manifest from a registry (or an image from a layout)."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import daemon_host_option, registry_options, shared_blob_dir_option, system_context


@click.command()
@click.argument("image")
@registry_options()
@shared_blob_dir_option()
@daemon_host_option()
@click.pass_context
def delete(ctx: click.Context, image: str, **flags: Any) -> None:
    """Delete IMAGE (docker://NAME:TAG deletes the manifest the tag names, and so every tag naming it)."""
    from imagetool.transports import parse_image_name

    parse_image_name(image).delete(system_context(ctx, **flags))
