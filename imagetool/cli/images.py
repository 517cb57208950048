"""Local store commands: images, tag, rmi, prune."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from imagetool.errors import ImagetoolError


def open_local_store(ctx: click.Context, create: bool = False) -> Any:
    from imagetool.store import default_store_path
    from imagetool.store.layout import LayoutStore

    path = default_store_path((ctx.find_root().obj or {}).get("store"))
    return LayoutStore.create(path) if create or not path.exists() else LayoutStore.open(path)


def _split(name: str) -> tuple[str, str]:
    repo, _, tag = name.rpartition(":")
    return (repo, tag) if repo and "/" not in tag else (name, "<none>")


@click.command()
@click.argument("image", required=False)
@click.option("-q", "--quiet", is_flag=True, help="Show image IDs only.")
@click.option("-n", "--noheading", is_flag=True, help="Omit the header line.")
@click.option("--digests", is_flag=True, help="Show manifest digests.")
@click.option("--no-trunc", is_flag=True, help="Show full IDs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (buildah's keys).")
@click.option("--format", "format_", metavar="TEMPLATE|json",
              help="Go template for each image name ({{.ID}} {{.Name}} {{.Tag}} {{.Digest}} {{.CreatedAt}} "
                   "{{.CreatedAtRaw}} {{.Created}} {{.Size}} {{.ReadOnly}} {{.History}}), or json.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="dangling=true|false, reference=GLOB, label=K[=V], before=IMAGE, since=IMAGE, id=PREFIX.")
@click.option("-a", "--all", "all_", is_flag=True, expose_value=False,
              help="Accepted for buildah's sake: there are no intermediate images to show.")
@click.pass_context
def images(ctx: click.Context, image: str | None, quiet: bool, noheading: bool, digests: bool, no_trunc: bool,
           as_json: bool, format_: str | None, filters: tuple[str, ...]) -> None:
    """List images in the local store (IMAGE: only that one)."""
    from imagetool.gotemplate import render
    from imagetool.local_images import list_local

    records = list_local(open_local_store(ctx, create=True), image, filters)
    short = (lambda d: d.hex) if no_trunc else (lambda d: d.hex[:12])
    if as_json or format_ == "json":
        click.echo(json.dumps([_json_record(r, short) for r in records], indent=4))
        return
    if format_:
        for r in records:
            for name in r.names or ("<none>:<none>",):
                click.echo(render(format_, _template_row(r, name, short)))
        return
    if quiet:
        for r in records:
            click.echo(short(r.id))
        return
    rows = []
    for r in records:
        for name in r.names or ("<none>:<none>",):
            repo, tag = _split(name)
            row = [repo, tag] + ([str(r.digest)] if digests else []) + [short(r.id), _created(r.created), _size(r.size)]
            rows.append(row)
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    print_table(header, rows, noheading)


def _epoch(stamp: str | None) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()) if stamp else 0
    except ValueError:
        return 0


def _json_record(r: Any, short: Any) -> dict[str, Any]:
    """One image as `buildah images --json` prints it (its keys, in its order)."""
    return {"id": short(r.id), "names": list(r.names) or None, "digest": str(r.digest),
            "createdat": _created(r.created), "size": _human_size(r.size), "created": _epoch(r.created),
            "createdatraw": r.created or "0001-01-01T00:00:00Z", "readonly": False, "history": None}


def _template_row(r: Any, name: str, short: Any) -> Any:
    """One row of `buildah images --format`: an image under one of its names."""
    from imagetool.govalues import GoTime, Struct

    repo, tag = _split(name)
    return Struct({"ID": short(r.id), "Name": repo, "Tag": tag, "Digest": str(r.digest),
                   "CreatedAt": _created(r.created), "Size": _human_size(r.size),
                   "CreatedAtRaw": GoTime(r.created or "0001-01-01T00:00:00Z"), "Created": _epoch(r.created),
                   "ReadOnly": False, "History": ", ".join(reversed(r.names)),
                   # the names imagetool's templates have used, kept working
                   "Id": r.id.hex, "Names": list(r.names), "MediaType": r.media_type})


def _human_size(n: int) -> str:
    """go-units' HumanSizeWithPrecision(n, 3), what buildah prints: 2.35 KB, 5.6 MB."""
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    size, i = float(n), 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g} {units[i]}"


def print_table(header: list[str], rows: list[list[str]], noheading: bool = False) -> None:
    table = rows if noheading else [header] + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(header))] if table else []
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _created(stamp: str | None) -> str:
    """RFC 3339 -> "3 hours ago", as buildah and podman show it."""
    from datetime import datetime

    try:
        return ago(datetime.fromisoformat(stamp).timestamp()) if stamp else ""
    except ValueError:
        return stamp or ""


def ago(when: float) -> str:
    seconds = max(0, int(time.time() - when))
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return f"{seconds} seconds ago"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


@click.command()
@click.argument("image")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def tag(ctx: click.Context, image: str, names: tuple[str, ...]) -> None:
    """Give IMAGE (a name or ID in the local store) the additional NAMES."""
    from imagetool.local_images import tag_image

    tag_image(open_local_store(ctx), image, names)


@click.command()
@click.argument("images_", metavar="[IMAGE...]", nargs=-1)
@click.option("-f", "--force", is_flag=True,
              help="Remove every name of an image given by ID, and the containers made from it.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove every image.")
@click.option("-p", "--prune", is_flag=True, help="Remove every image without a name.")
@click.pass_context
def rmi(ctx: click.Context, images_: tuple[str, ...], force: bool, all_: bool, prune: bool) -> None:
    """Remove IMAGE names (or, by ID, whole images) from the local store, then unused blobs."""
    from imagetool.errors import UsageError
    from imagetool.local_images import ImageRemoval

    if bool(images_) + all_ + prune != 1:
        raise UsageError("give IMAGE names, or --all, or --prune")
    removal = ImageRemoval(open_local_store(ctx), force=force)
    if all_ or prune:
        for record in removal.remove_all(dangling_only=prune):
            click.echo(record.id.hex)
        removal.collect()
        return
    failed = False
    for text in images_:
        try:
            for removed in removal.remove(text):
                click.echo(f"Untagged: {removed}")
        except ImagetoolError as err:
            click.echo(f"imagetool: {err}", err=True)
            failed = True
    removal.collect()
    if failed:
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.pass_context
def prune(ctx: click.Context, dry_run: bool) -> None:
    """Remove dangling images no container uses, then blobs no image or container uses."""
    from imagetool.store.gc import collect
    from imagetool.store.images import remove_all

    store = open_local_store(ctx)
    gone = remove_all(store, dangling_only=True, dry_run=dry_run)
    for record in gone:
        click.echo(record.id.hex)
    result = collect(store, dry_run=dry_run, without={r.digest for r in gone})
    for digest in result.removed:
        click.echo(str(digest))
    click.echo(f"{'Would remove' if dry_run else 'Removed'} {len(gone)} dangling images, {len(result.removed)} "
               f"blobs, {result.freed_bytes} bytes", err=True)
