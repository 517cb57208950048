"""`imagetool import SOURCE [NAME]`: a one-layer image from a root filesystem directory or tarball."""

from __future__ import annotations

import click

from imagetool.build.importer import import_rootfs
from imagetool.store import default_store_path
from imagetool.store.images import image_id
from imagetool.store.layout import LayoutStore


@click.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=True, file_okay=True))
@click.argument("name", required=False)
@click.option("-c", "--change", "changes", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.")
@click.option("-m", "--message", default="", help="Comment recorded in the image history.")
@click.option("--format", "fmt", type=click.Choice(["oci", "docker"]), default="oci", show_default=True,
              help="Manifest and config format.")
@click.option("--compress", "compress", type=click.Choice(["gzip", "zstd", "none"]), default="gzip",
              show_default=True, help="Layer compression.")
@click.option("--timestamp", type=int, default=None, metavar="SECONDS",
              help="Creation time (seconds since the epoch) for a reproducible image; "
                   "default $SOURCE_DATE_EPOCH or now.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
@click.pass_context
def import_(ctx: click.Context, source: str, name: str | None, changes: tuple[str, ...], message: str,
            fmt: str, compress: str, timestamp: int | None, quiet: bool) -> None:
    """Make an image from a root filesystem directory or tar(.gz|.zst) SOURCE, named NAME in the local store."""
    root = ctx.find_root().obj or {}
    store = LayoutStore.create(default_store_path(root.get("store")))
    desc = import_rootfs(source, name, changes, store=store, timestamp=timestamp,
                         layer_compression=None if compress == "none" else compress, oci=fmt == "oci",
                         message=message)
    if not quiet:
        click.echo(image_id(store, desc).hex)
