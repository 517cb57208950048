"""`imagetool manifest create|add|remove|annotate|inspect|push|rm|exists`: buildah's manifest lists."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.images import open_local_store
from imagetool.cli.options import (policy_from_flags, registry_options, signers_from_flags, signing_options,
                                   system_context, write_digestfile)


@click.group()
def manifest() -> None:
    """Create, change and push manifest lists (image indexes) kept in the local store."""


def _instance_options(func: Any) -> Any:
    for option in reversed([
        click.option("--os", "os_", metavar="OS", help="Set the entry's OS."),
        click.option("--arch", metavar="ARCH", help="Set the entry's architecture."),
        click.option("--variant", metavar="VARIANT", help="Set the entry's architecture variant."),
        click.option("--os-version", metavar="VERSION", help="Set the entry's OS version."),
        click.option("--os-features", metavar="F[,F...]", help="Set the entry's OS features."),
        click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
                     help="Add an annotation to the entry."),
    ]):
        func = option(func)
    return func


def _options(os_: str | None, arch: str | None, variant: str | None, os_version: str | None,
             os_features: str | None, annotations: tuple[str, ...]) -> Any:
    from imagetool.errors import UsageError
    from imagetool.manifest_lists import InstanceOptions

    pairs = {}
    for item in annotations:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise UsageError(f"--annotation {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return InstanceOptions(os_, arch, variant, os_version, os_features.split(",") if os_features else None, pairs)


@manifest.command()
@click.argument("name")
@click.argument("images", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Add every instance of IMAGES that are lists.")
@click.option("--format", "format_", type=click.Choice(["oci", "v2s2"]), default="oci", show_default=True,
              help="An OCI index or a Docker manifest list.")
@registry_options()
@click.pass_context
def create(ctx: click.Context, name: str, images: tuple[str, ...], all_: bool, format_: str, **flags: Any) -> None:
    """Create a list, with IMAGES in it.

    Prints the list's digest."""
    from imagetool import manifest_lists

    store = open_local_store(ctx, create=True)
    desc = manifest_lists.create(store, name, docker=format_ == "v2s2")
    for image in images:
        _add(ctx, store, name, image, all_, manifest_lists.InstanceOptions(), flags)
    click.echo(manifest_lists.load(store, name)[0].digest if images else desc.digest)


def _add(ctx: click.Context, store: Any, name: str, image: str, all_: bool, options: Any,
         flags: dict[str, Any]) -> list[Any]:
    from imagetool import manifest_lists
    from imagetool.copy import CopyOptions
    from imagetool.copy.progress import Progress
    from imagetool.transports import parse_image_name

    sys_ctx = system_context(ctx, **flags)
    copy = CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, policy=policy_from_flags(ctx), progress=Progress(quiet=True))
    return manifest_lists.add(store, name, parse_image_name(image), options, copy, all_)


@manifest.command()
@click.argument("name")
@click.argument("image")
@click.option("--all", "all_", is_flag=True, help="Add every instance when IMAGE is a list.")
@_instance_options
@registry_options()
@click.pass_context
def add(ctx: click.Context, name: str, image: str, all_: bool, os_: str | None, arch: str | None,
        variant: str | None, os_version: str | None, os_features: str | None, annotations: tuple[str, ...],
        **flags: Any) -> None:
    """Add an image to a list.

    IMAGE is a local name or any transport (docker://...); its manifest and blobs are copied into the
    store. Prints the digests added."""
    store = open_local_store(ctx, create=True)
    for digest in _add(ctx, store, name, image, all_,
                       _options(os_, arch, variant, os_version, os_features, annotations), flags):
        click.echo(digest)


@manifest.command()
@click.argument("name")
@click.argument("instance")
@click.pass_context
def remove(ctx: click.Context, name: str, instance: str) -> None:
    """Remove an entry (a digest) from a list."""
    from imagetool import manifest_lists

    store = open_local_store(ctx)
    manifest_lists.remove(store, name, manifest_lists.instance_digest(store, name, instance))


@manifest.command()
@click.argument("name")
@click.argument("instance")
@_instance_options
@click.pass_context
def annotate(ctx: click.Context, name: str, instance: str, os_: str | None, arch: str | None, variant: str | None,
             os_version: str | None, os_features: str | None, annotations: tuple[str, ...]) -> None:
    """Set an entry's platform or annotations.

    INSTANCE is the entry's digest, or an image in the store whose manifest the list holds."""
    from imagetool import manifest_lists

    store = open_local_store(ctx)
    manifest_lists.annotate(store, name, manifest_lists.instance_digest(store, name, instance),
                            _options(os_, arch, variant, os_version, os_features, annotations))


@manifest.command()
@click.argument("name")
@registry_options()
@click.pass_context
def inspect(ctx: click.Context, name: str, **flags: Any) -> None:
    """Print a list.

    From the local store, else from where NAME points (docker:// unless another transport is named)."""
    import json

    from imagetool import manifest_lists
    from imagetool.errors import NotFound
    from imagetool.inspect import raw_manifest
    from imagetool.transports import parse_image_name

    try:
        raw = manifest_lists.load(open_local_store(ctx, create=True), name)[1].raw
    except NotFound:
        raw = raw_manifest(parse_image_name(name, default="docker"), system_context(ctx, **flags))
    click.echo(json.dumps(json.loads(raw), indent=4))


@manifest.command()
@click.argument("name")
@click.argument("destination", required=False)
@click.option("--all/--list-only", "all_", default=True, show_default=True,
              help="Push the list's images too, or only the list.")
@click.option("-f", "--format", "format_", type=click.Choice(["oci", "v2s2"]), default=None,
              help="Push as an OCI index or a Docker manifest list.")
@click.option("--digestfile", metavar="PATH", help="Write the pushed list's digest to PATH.")
@click.option("--rm", "remove_list", is_flag=True, help="Remove the list from the store once pushed.")
@click.option("--remove-signatures", is_flag=True, help="Do not copy signatures.")
@signing_options(identity=False)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@registry_options()
@click.pass_context
def push(ctx: click.Context, name: str, destination: str | None, all_: bool, format_: str | None,
         digestfile: str | None, remove_list: bool, remove_signatures: bool, quiet: bool, **flags: Any) -> None:
    """Push a list (and its images) to DESTINATION.

    DESTINATION is docker:// unless another transport is named; by default docker://NAME."""
    from imagetool import manifest_lists
    from imagetool.copy import CopyOptions, copy_image
    from imagetool.copy.progress import Progress
    from imagetool.transports import parse_image_name
    from imagetool.transports.local import parse as parse_local

    store = open_local_store(ctx)
    manifest_lists.load(store, name)
    source = parse_local(name)
    sys_ctx = system_context(ctx, **flags)
    options = CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, multi_arch="all" if all_ else "index-only",
                          format=format_, remove_signatures=remove_signatures, policy=policy_from_flags(ctx),
                          signers=signers_from_flags(flags), progress=Progress(quiet=quiet))
    result = copy_image(source, parse_image_name(destination or f"docker://{source.named}", default="docker"),
                        options)
    write_digestfile(digestfile, result.digest)
    if remove_list:
        manifest_lists.delete(store, name)


@manifest.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove lists from the local store.

    Their images stay where they have names of their own."""
    from imagetool import manifest_lists

    store = open_local_store(ctx)
    for name in names:
        manifest_lists.delete(store, name)
        click.echo(name)


@manifest.command()
@click.argument("name")
@click.pass_context
def exists(ctx: click.Context, name: str) -> None:
    """Exit 0 if a list is in the store, else 1."""
    from imagetool import manifest_lists
    from imagetool.errors import ImagetoolError

    try:
        manifest_lists.load(open_local_store(ctx, create=True), name)
    except ImagetoolError:
        ctx.exit(1)
