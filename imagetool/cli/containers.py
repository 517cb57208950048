"""`ps` and `rm`: the containers `run` keeps in the local store when not given --rm."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from imagetool.cli.images import open_local_store, ago, print_table


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Accepted for podman's habit: every container is listed.")
@click.option("-q", "--quiet", is_flag=True, help="Show names only.")
@click.option("-n", "--noheading", is_flag=True, help="Omit the header line.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (buildah's containers keys, and more).")
@click.option("--format", "format_", metavar="TEMPLATE|json",
              help="Go template for each container ({{.ContainerName}} {{.ContainerID}} {{.ImageName}} "
                   "{{.ImageID}} {{.Builder}}, podman's {{.Names}} {{.Image}} {{.Command}} {{.CreatedAt}} "
                   "{{.Status}}), or json.")
@click.pass_context
def ps(ctx: click.Context, all_: bool, quiet: bool, noheading: bool, as_json: bool, format_: str | None) -> None:
    """List the containers kept in the local store."""
    from imagetool.runtime.kept_containers import list_containers
    from imagetool.runtime.launch import containers_dir
    from imagetool.store.images import shown_name

    store = open_local_store(ctx, create=True)
    found = list_containers(containers_dir(store))
    if quiet:
        for c in found:
            click.echo(c.name)
        return
    if as_json or format_:
        docs = [_doc(store, c) for c in found]
        if as_json or format_ == "json":
            click.echo(json.dumps([{k: v for k, v in d.items() if k in _JSON} for d in docs], indent=4))
            return
        from imagetool.gotemplate import render
        from imagetool.govalues import Struct

        for d in docs:
            click.echo(render(format_, Struct({_TEMPLATE.get(k, k): v for k, v in d.items()})))  # type: ignore[arg-type]
        return
    rows = [[c.name, shown_name(store, c.image, c.image_digest),
             shlex.join(c.command)[:40], ago(c.created) if c.created else "", _status(c)]
            for c in found]
    print_table(["NAME", "IMAGE", "COMMAND", "CREATED", "STATUS"], rows, noheading)


#: buildah containers --json keys (then what podman shows), and the template names of each
_JSON = ("id", "builder", "imageid", "imagename", "containername", "command", "created", "status")
_TEMPLATE = {"id": "ContainerID", "builder": "Builder", "imageid": "ImageID", "imagename": "ImageName",
             "containername": "ContainerName", "command": "Command", "created": "Created", "status": "Status"}


def _status(c: Any) -> str:
    return "Running" if c.running else f"Exited ({c.exit_code})" if c.exit_code is not None else "Created"


def _doc(store: Any, c: Any) -> dict[str, Any]:
    """A container's fields; its ID is its name (what `rm` takes: these containers have no other)."""
    from imagetool.digest import Digest
    from imagetool.errors import ImagetoolError
    from imagetool.store.images import by_digest, image_id

    try:
        iid = image_id(store, by_digest(store, Digest.parse(c.image_digest))).hex if c.image_digest else ""
    except (ImagetoolError, OSError):
        iid = ""
    created = ago(c.created) if c.created else ""
    return {"id": c.name, "builder": False, "imageid": iid, "imagename": c.image, "containername": c.name,
            "command": shlex.join(c.command), "created": int(c.created or 0), "status": _status(c),
            # podman's template names
            "ID": c.name, "Names": c.name, "Image": c.image, "CreatedAt": created}


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove every container that is not running.")
@click.argument("names", nargs=-1)
@click.pass_context
def rm(ctx: click.Context, all_: bool, names: tuple[str, ...]) -> None:
    """Remove containers (their changed files and records) from the local store."""
    from imagetool.errors import UsageError
    from imagetool.runtime.kept_containers import list_containers, remove_container
    from imagetool.runtime.launch import containers_dir

    root = containers_dir(open_local_store(ctx, create=True))
    if all_ == bool(names):
        raise UsageError("give container names or --all (not both)")
    targets = [c.name for c in list_containers(root) if not c.running] if all_ else list(names)
    for name in targets:
        remove_container(root, name)
        click.echo(name)
