"""The `imagetool` command: a root group whose subcommands load on first use.

Every ImagetoolError becomes one line on stderr and its exit code; no traceback
reaches a user unless --debug is given.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from imagetool import __version__
from imagetool.cli.personality import error_line, version_message

if TYPE_CHECKING:
    from imagetool.errors import ImagetoolError

#: command name -> ("module:attribute" of a click.Command, one-line help shown by --help)
COMMANDS: dict[str, tuple[str, str]] = {
    "copy": ("imagetool.cli.copy:copy", "Copy an image from one location to another."),
    "inspect": ("imagetool.cli.inspect:inspect", "Show an image's manifest, config and metadata."),
    "manifest-digest": ("imagetool.cli.inspect:manifest_digest", "Print the digest of a manifest file."),
    "images": ("imagetool.cli.images:images", "List images in the local store."),
    "tag": ("imagetool.cli.images:tag", "Add names to an image in the local store."),
    "rmi": ("imagetool.cli.images:rmi", "Remove images from the local store."),
    "prune": ("imagetool.cli.images:prune", "Remove blobs no image in the local store uses."),
    "import": ("imagetool.cli.import_:import_", "Make an image from a root filesystem tarball or directory."),
    "delete": ("imagetool.cli.delete:delete", "Delete an image."),
    "list-tags": ("imagetool.cli.tags:list_tags", "List the tags of a repository."),
    "login": ("imagetool.cli.login:login", "Log in to a registry."),
    "logout": ("imagetool.cli.login:logout", "Log out of a registry."),
    "attach": ("imagetool.cli.attach:attach", "Push an artifact (an SBOM, ...) that refers to an image."),
    "sync": ("imagetool.cli.sync:sync", "Copy whole repositories between locations."),
    "generate-key": ("imagetool.cli.sign:generate_key", "Generate a sigstore (cosign) key pair."),
    "verify": ("imagetool.cli.sign:verify", "Check an image against the trust policy."),
    "standalone-sign": ("imagetool.cli.sign:standalone_sign", "Sign a manifest file with GPG."),
    "standalone-verify": ("imagetool.cli.sign:standalone_verify", "Verify a signature of a manifest file."),
    "manifest": ("imagetool.cli.manifest:manifest", "Create, change and push manifest lists."),
    "pull": ("imagetool.cli.pull:pull", "Copy an image from a registry into the local store."),
    "push": ("imagetool.cli.push:push", "Copy an image from the local store to a registry."),
    "run": ("imagetool.cli.run:run", "Run a command in a new container."),
    "ps": ("imagetool.cli.containers:ps", "List the containers kept in the local store."),
    "rm": ("imagetool.cli.containers:rm", "Remove containers from the local store."),
    "build": ("imagetool.cli.build:build", "Build an image from a Dockerfile."),
    "commit": ("imagetool.cli.commit:commit", "Make an image of a container's changes."),
    "unshare": ("imagetool.cli.unshare:unshare", "Run a command in the user namespace of the local store."),
}


def _columns() -> int:
    """shutil.get_terminal_size().columns ($COLUMNS, else stdout's terminal, else 80) without loading shutil,
    which `imagetool --help` would otherwise load for this alone (with bz2 and lzma: 4% of its instructions)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


class _HelpFormatter(click.HelpFormatter):
    """click's, with the width click would compute (click.testing's FORCED_WIDTH still wins)."""

    def __init__(self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None) -> None:
        if width is None and click.formatting.FORCED_WIDTH is None:
            width = max(min(_columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


class _Context(click.Context):
    formatter_class = _HelpFormatter


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (keeps start-up small)."""

    context_class = _Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "help":
            return _help
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        if module not in sys.modules:
            from imagetool.cli.entry import before_subcommand

            before_subcommand()
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                          list[str]]:
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            import difflib

            close = difflib.get_close_matches(args[0], [*COMMANDS, "help"], n=1, cutoff=0.6)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise click.UsageError(f'unknown command "{args[0]}" for "imagetool"{hint}', ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists names only, so `imagetool --help` imports no subcommand module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)] + [("help", _HELP)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagetool", message=version_message())
@click.option("--store", envvar="IMAGETOOL_STORE", metavar="DIR",
              help="Local image store (default $XDG_DATA_HOME/imagetool/store).")
@click.option("--policy", metavar="PATH",
              help="Trust policy file (default ~/.config/containers/policy.json, else /etc/containers/policy.json).")
@click.option("--insecure-policy", is_flag=True, help="Accept any image, ignoring the trust policy.")
@click.option("--registries.d", "registries_d", metavar="DIR", help="Registries.d directory (signature storage).")
@click.option("--override-arch", metavar="ARCH", help="Use ARCH instead of the machine's when choosing images.")
@click.option("--override-os", metavar="OS", help="Use OS instead of the machine's when choosing images.")
@click.option("--override-variant", metavar="VARIANT", help="Use VARIANT when choosing images.")
@click.option("--tmpdir", metavar="DIR", help="Directory for temporary files.")
@click.option("--command-timeout", metavar="DURATION", help="End the command after DURATION (30s, 1m30s).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """Copy, inspect, sign, run and build OCI container images."""
    ctx.obj = options
    from imagetool.cli.entry import resume_gc

    resume_gc()
    _debug[0] = bool(options["debug"])
    if options.get("command_timeout"):
        from imagetool import goduration
        from imagetool.cli import deadline

        try:
            seconds = goduration.seconds(options["command_timeout"])
        except ValueError as err:
            raise click.BadParameter(f"{options['command_timeout']!r} is not a duration (30s, 1m30s, 500ms)",
                                     param_hint="--command-timeout") from err
        deadline.arm(seconds, options["command_timeout"])


_HELP = "Help about any command."


@click.command("help", help=_HELP)
@click.argument("command", nargs=-1)
@click.pass_context
def _help(ctx: click.Context, command: tuple[str, ...]) -> None:
    """`imagetool help [COMMAND...]`: what --help prints, as skopeo's help command does."""
    group = ctx.parent
    assert group is not None
    if not command:
        click.echo(group.get_help())
        return
    target: click.Command = group.command
    for name in command:
        sub = target.get_command(group, name) if isinstance(target, click.Group) else None
        if sub is None:
            raise click.UsageError(f'unknown help topic "{" ".join(command)}"', ctx)
        target = sub
    with click.Context(target, info_name=" ".join(command), parent=group) as sub_ctx:
        click.echo(target.get_help(sub_ctx))


#: the global --debug as click parsed it (a container's own `--debug` argument is not ours)
_debug = [False]


def _imagetool_error() -> type[ImagetoolError]:
    """imagetool.errors loads when a failure is to be told: `imagetool --help` never loads it."""
    from imagetool.errors import ImagetoolError

    return ImagetoolError


def _describe(err: BaseException) -> str:
    from imagetool.errors import describe

    return describe(err)


def main(argv: list[str] | None = None) -> None:
    _debug[0] = False
    try:
        rc = cli.main(args=argv, prog_name="imagetool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(error_line("aborted"), err=True)
        sys.exit(130)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(error_line(err.format_message()), err=True)
        sys.exit(err.exit_code)
    except _imagetool_error() as err:  # evaluated only once something failed
        if _debug[0]:
            raise
        click.echo(error_line(_describe(err)), err=True)
        if type(err).__name__ == "CommandTimeout":  # worker threads may still wait on the network
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(err.exit_code)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as err:
        if _debug[0]:
            raise
        click.echo(error_line(_describe(err)), err=True)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if _debug[0]:
            raise
        click.echo(error_line(f"internal error: {type(err).__name__}: {_describe(err)} "
                              "(run with --debug for details)"), err=True)
        sys.exit(70)
    sys.exit(rc if isinstance(rc, int) else 0)
