"""`imagetool delete IMAGE`: remove a manifest from a registry (or an image from a layout)."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import system_context


@click.command()
@click.argument("image")
@click.option("--creds", metavar="USER[:PASS]", help="Registry credentials.")
@click.option("--registry-token", metavar="TOKEN", help="Bearer token for the registry.")
@click.option("--no-creds", is_flag=True, help="Access the registry anonymously.")
@click.option("--authfile", metavar="PATH", help="Auth file.")
@click.option("--cert-dir", metavar="DIR", help="Certificates for the registry.")
@click.option("--tls-verify", type=click.BOOL, default=None, metavar="BOOL", help="Require HTTPS and verify.")
@click.option("--retry-times", type=int, default=None, help="Retries for transient network errors.")
@click.option("--retry-delay", type=float, default=None, help="Seconds between retries (default: backoff).")
@click.pass_context
def delete(ctx: click.Context, image: str, **flags: Any) -> None:
    """Delete IMAGE (docker://NAME:TAG deletes the manifest the tag names, and so every tag naming it)."""
    from imagetool.transports import parse_image_name

    parse_image_name(image).delete(system_context(ctx, **flags))
