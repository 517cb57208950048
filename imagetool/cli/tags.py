"""`imagetool list-tags docker://REPO | docker-archive:PATH`: skopeo's JSON ({"Repository": ..., "Tags": [...]})."""

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
    """List the tags of REPOSITORY (docker://NAME without a tag), or the names in docker-archive:PATH."""
    from imagetool.errors import UsageError
    from imagetool.transports.docker import make_client, parse_repository

    if repository.startswith("docker-archive:"):
        from imagetool.transports import docker_archive

        path = repository.removeprefix("docker-archive:")
        click.echo(json.dumps({"Tags": docker_archive.list_tags(path, system_context(ctx, **flags))}, indent=4))
        return
    if not repository.startswith("docker:"):
        raise UsageError(f"list-tags supports docker:// repositories and docker-archive: files, not {repository!r}")
    ref = parse_repository(repository)
    tags = make_client(ref, system_context(ctx, **flags)).list_tags(ref.path, page_size)
    click.echo(json.dumps({"Repository": ref.name, "Tags": tags}, indent=4))
