"""`unshare`: a command in the store's user namespace, as `buildah unshare` and `podman unshare`.

Rootless, the store holds files of subordinate ids; inside the namespace they have the
owners containers see and the user can inspect or remove them. As root it just runs.
"""

from __future__ import annotations

import os
import sys

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def unshare(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Run COMMAND (default $SHELL) in the user namespace of the local store."""
    from imagetool import userns
    from imagetool.store import default_store_path

    store = default_store_path(ctx.obj.get("store"))
    argv = list(command) or [os.environ.get("SHELL") or "/bin/sh"]
    env = {**os.environ, "IMAGETOOL_STORE": str(store.absolute())}
    sys.exit(userns.run_command(argv, env))
