"""`imagetool commit CONTAINER [IMAGE]`: podman's and buildah's commit of a container `run` kept."""

from __future__ import annotations

import click


@click.command()
@click.argument("container")
@click.argument("image", required=False)
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction to the config (CMD, ENV, LABEL, ...); repeatable.")
@click.option("-m", "--message", default="", help="A comment for the new history entry.")
@click.option("-a", "--author", default="", help="The image's author.")
@click.option("-f", "--format", "fmt", type=click.Choice(["oci", "docker"]), default="oci", show_default=True)
@click.option("--compress", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True,
              help="Layer compression.")
@click.option("--timestamp", type=int, metavar="SECONDS", help="Creation time (default $SOURCE_DATE_EPOCH or now).")
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID to this file.")
@click.option("--rm", "remove", is_flag=True, help="Remove the container once committed.")
@click.option("-q", "--quiet", is_flag=True, expose_value=False, help="Accepted: only the image ID is printed.")
@click.pass_context
def commit(ctx: click.Context, container: str, image: str | None, changes: tuple[str, ...], message: str,
           author: str, fmt: str, compress: str, timestamp: int | None, iidfile: str | None, remove: bool) -> None:
    """Make an image of what the stopped CONTAINER changed on top of its image; print the image ID."""
    from imagetool.build.container_commit import commit_container
    from imagetool.cli.images import open_local_store
    from imagetool.runtime.kept_containers import remove_container
    from imagetool.runtime.launch import containers_dir
    from imagetool.store.images import image_id

    store = open_local_store(ctx)
    desc = commit_container(store, container, image, changes=changes, message=message, author=author,
                            timestamp=timestamp, layer_compression=None if compress == "none" else compress,
                            oci=fmt == "oci")
    iid = image_id(store, desc)
    if iidfile:
        from imagetool.outputs import write_output

        write_output(iidfile, str(iid).encode())
    if remove:
        remove_container(containers_dir(store), container)
    click.echo(iid.hex)
