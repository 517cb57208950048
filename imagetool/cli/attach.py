"""`imagetool attach --artifact-type TYPE [--annotation K=V] FILE... REF`: an artifact referring to REF."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import registry_options, system_context


@click.command()
@click.option("--artifact-type", required=True, metavar="TYPE", help="The artifact's type (e.g. an SBOM format).")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="An annotation of the artifact manifest (repeatable).")
@click.argument("args", nargs=-1, required=True)
@registry_options()
@click.pass_context
def attach(ctx: click.Context, artifact_type: str, annotations: tuple[str, ...], args: tuple[str, ...],
           **flags: Any) -> None:
    """Push FILEs as an artifact whose subject is the image REF (the last argument), as `oras attach` does;
    prints the artifact's digest."""
    from imagetool.errors import UsageError
    from imagetool.transports import parse_image_name
    from imagetool.transports.referrers import attach as attach_artifact
    from imagetool.transports.referrers import parse_annotations

    if len(args) < 2:
        raise UsageError("attach needs at least one FILE and the image REF")
    *files, image = args
    desc = attach_artifact(parse_image_name(image), system_context(ctx, **flags), artifact_type, files,
                           parse_annotations(annotations))
    click.echo(str(desc.digest))
