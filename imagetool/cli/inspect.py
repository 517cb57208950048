"""`imagetool inspect` and `imagetool manifest-digest`."""

from __future__ import annotations

import sys
from typing import Any

import click

from imagetool.cli.options import daemon_host_option, registry_options, shared_blob_dir_option, system_context


@click.command()
@click.argument("image")
@click.option("--raw", is_flag=True, help="Print the manifest (or with --config the config) bytes as stored.")
@click.option("--config", "config", is_flag=True, help="Print the image configuration.")
@click.option("-f", "--format", "format_", metavar="TEMPLATE", help="Go template applied to the output.")
@click.option("-n", "--no-tags", is_flag=True, help="Do not list the repository's tags.")
@click.option("--referrers", is_flag=True, help="List the image's OCI 1.1 referrers (signatures, SBOMs, ...).")
@click.option("--artifact-type", metavar="TYPE", help="With --referrers: only referrers of this artifactType.")
@registry_options()
@shared_blob_dir_option()
@daemon_host_option()
@click.pass_context
def inspect(ctx: click.Context, image: str, raw: bool, config: bool, format_: str | None, no_tags: bool,
            referrers: bool, artifact_type: str | None, **flags: Any) -> None:
    """Show IMAGE's digest, tags, layers and configuration (skopeo inspect's fields)."""
    from imagetool import inspect as lib
    from imagetool.transports import parse_image_name

    ref = parse_image_name(image)
    sysctx = system_context(ctx, **flags)
    if artifact_type and not referrers:
        from imagetool.errors import UsageError

        raise UsageError("--artifact-type needs --referrers")
    if referrers:
        from imagetool.transports.referrers import list_for

        found = list_for(ref, sysctx, artifact_type)
        click.echo(render(format_, found) if format_ else lib.pretty(found))
        return
    if config:
        data = lib.image_config(ref, sysctx)
        if raw:
            sys.stdout.buffer.write(data)
            return
        from imagetool import gojson

        doc = gojson.loads(data, "image config")
        click.echo(render(format_, lib.config_view(doc)) if format_ else lib.pretty(doc))
        return
    if raw:
        sys.stdout.buffer.write(lib.raw_manifest(ref, sysctx))
        return
    info = lib.inspect_image(ref, sysctx, tags=not no_tags)
    click.echo(render(format_, lib.template_view(info)) if format_ else lib.pretty(info))


def render(template: str, data: Any) -> str:
    """--format's Go template (the engine loads only when one is given)."""
    from imagetool.gotemplate import render as go_render

    return go_render(template, data)


@click.command("manifest-digest")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
def manifest_digest(manifest: str) -> None:
    """Print the digest of the MANIFEST file."""
    from imagetool.inspect import manifest_digest as digest_of

    click.echo(str(digest_of(manifest)))
