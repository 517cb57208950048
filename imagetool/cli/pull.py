"""`imagetool pull IMAGE`: buildah's pull, a copy into the local store (a bare name means a registry)."""

from __future__ import annotations

from typing import Any

import click

from imagetool.cli.options import platform_parts, policy_from_flags, registry_options, system_context


@click.command()
@click.argument("image")
@click.option("-a", "--all-tags", is_flag=True, help="Pull every tag of the repository.")
@click.option("--policy", "pull_policy", type=click.Choice(["missing", "always", "never"]), default="missing",
              show_default=True, help="Pull only when the name is not in the local store, always, or never.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Choose this instance of a multi-platform image.")
@click.option("--os", "os_", metavar="OS", help="Choose an instance for OS.")
@click.option("--arch", metavar="ARCH", help="Choose an instance for ARCH.")
@click.option("--variant", metavar="VARIANT", help="Choose an instance for VARIANT.")
@click.option("--remove-signatures", is_flag=True, help="Do not copy signatures.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@registry_options()
@click.pass_context
def pull(ctx: click.Context, image: str, all_tags: bool, pull_policy: str, platform: str | None, os_: str | None,
         arch: str | None, variant: str | None, remove_signatures: bool, quiet: bool, **flags: Any) -> None:
    """Copy IMAGE (docker:// unless another transport is named) into the local store; print its ID."""
    from imagetool.copy import CopyOptions
    from imagetool.copy.progress import Progress
    from imagetool.pull import pull_image
    from imagetool.transports import parse_image_name

    os_, arch, variant = platform_parts(platform, os_, arch, variant)
    sys_ctx = system_context(ctx, **flags)
    sys_ctx.override_os = os_ or sys_ctx.override_os
    sys_ctx.override_arch = arch or sys_ctx.override_arch
    sys_ctx.override_variant = variant or sys_ctx.override_variant
    options = CopyOptions(src_ctx=sys_ctx, dest_ctx=sys_ctx, policy=policy_from_flags(ctx),
                          remove_signatures=remove_signatures, progress=Progress(quiet=quiet))
    for pulled in pull_image(parse_image_name(image, default="docker"), options, pull_policy, all_tags):
        click.echo(pulled.id.hex)
