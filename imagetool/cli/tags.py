"""`imagetool list-tags docker://REPO`: skopeo's JSON ({"Repository": ..., "Tags": [...]})."""

from __future__ import annotations

import json
from typing import Any

import click

from imagetool.cli.options import registry_options, system_context


@click.command("list-tags")
@click.argument("repository")
@registry_options()
@click.option("--page-size", type=click.IntRange(1, 10000), default=None,
              help="Tags asked for per request (the registry pages with Link headers).")
@click.pass_context
def list_tags(ctx: click.Context, repository: str, page_size: int | None, **flags: Any) -> None:
    """List the tags of REPOSITORY (docker://NAME without a tag)."""
    from imagetool.errors import UsageError
    from imagetool.transports.docker import make_client, parse_repository

    if not repository.startswith("docker:"):
        raise UsageError(f"list-tags supports docker:// repositories only, not {repository!r}")
    ref = parse_repository(repository)
    tags = make_client(ref, system_context(ctx, **flags)).list_tags(ref.path, page_size)
    click.echo(json.dumps({"Repository": ref.name, "Tags": tags}, indent=4))
