"""Go-style boolean flags on click commands: `--rm=false`, `--layers=true`, as buildah's users write them.

Go's flag packages take `--flag`, `--flag=true` and `--flag=false` for a boolean (never a separate
word: `--rm false` is the flag and an argument). click takes `--flag` / `--no-flag`; this command
class rewrites the `=true|false` forms into those before click parses the line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

_TRUE = ("true", "1", "t", "yes")
_FALSE = ("false", "0", "f", "no")


class GoBoolCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _rewrite(self, args))


def _rewrite(command: click.Command, args: list[str]) -> list[str]:
    flags: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.is_flag:
            for name in (*param.opts, *param.secondary_opts):
                flags[name] = param
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        name, sep, value = arg.partition("=")
        option = flags.get(name) if sep and name.startswith("--") else None
        if option is None:
            out.append(arg)
            continue
        truth = _truth(arg, value.lower())
        negated = name in option.secondary_opts
        if truth != negated:
            out.append(option.opts[0])
        elif option.secondary_opts:
            out.append(option.secondary_opts[0])
        # else: a plain flag set to false is a flag not given
    return out


def _truth(arg: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise click.UsageError(f"{arg}: expected true or false")


def go_bool_command(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    return click.command(name, cls=GoBoolCommand, **kwargs)
