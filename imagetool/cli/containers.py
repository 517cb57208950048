"""`ps` and `rm`: the containers `run` keeps in the local store when not given --rm."""

from __future__ import annotations

import shlex

import click

from imagetool.cli.images import open_local_store, ago, print_table


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Accepted for podman's habit: every container is listed.")
@click.option("-q", "--quiet", is_flag=True, help="Show names only.")
@click.option("-n", "--noheading", is_flag=True, help="Omit the header line.")
@click.pass_context
def ps(ctx: click.Context, all_: bool, quiet: bool, noheading: bool) -> None:
    """List the containers kept in the local store."""
    from imagetool.runtime.containers import list_containers
    from imagetool.runtime.launch import containers_dir
    from imagetool.store.images import shown_name

    store = open_local_store(ctx, create=True)
    found = list_containers(containers_dir(store))
    if quiet:
        for c in found:
            click.echo(c.name)
        return
    rows = [[c.name, shown_name(store, c.image, c.image_digest),
             shlex.join(c.command)[:40], ago(c.created) if c.created else "",
             "Running" if c.running else f"Exited ({c.exit_code})" if c.exit_code is not None else "Created"]
            for c in found]
    print_table(["NAME", "IMAGE", "COMMAND", "CREATED", "STATUS"], rows, noheading)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove every container that is not running.")
@click.argument("names", nargs=-1)
@click.pass_context
def rm(ctx: click.Context, all_: bool, names: tuple[str, ...]) -> None:
    """Remove containers (their changed files and records) from the local store."""
    from imagetool.errors import UsageError
    from imagetool.runtime.containers import list_containers, remove_container
    from imagetool.runtime.launch import containers_dir

    root = containers_dir(open_local_store(ctx, create=True))
    if all_ == bool(names):
        raise UsageError("give container names or --all (not both)")
    targets = [c.name for c in list_containers(root) if not c.running] if all_ else list(names)
    for name in targets:
        remove_container(root, name)
        click.echo(name)
