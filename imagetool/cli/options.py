"""Flag groups shared by several subcommands, and turning flags into a SystemContext."""

from __future__ import annotations

from typing import Any, Callable

import click

from imagetool.errors import UsageError
from imagetool.transports.base import SystemContext

F = Callable[..., Any]


def tls_verify_option(name: str = "--tls-verify") -> F:
    return click.option(name, type=click.BOOL, default=None, metavar="BOOL",
                        help="Require HTTPS and verify certificates (default true).")


def parse_creds(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not user:
        raise UsageError("credentials must be USERNAME[:PASSWORD]")
    if not sep:
        password = click.prompt(f"Password for {user}", hide_input=True, err=True)
    return user, password


def system_context(ctx: click.Context, prefix: str = "", **flags: Any) -> SystemContext:
    """A SystemContext from the global options plus a command's (optionally src-/dest-prefixed) flags."""
    root = ctx.find_root().obj or {}

    def flag(name: str) -> Any:
        value = flags.get(f"{prefix}{name}")
        return value if value is not None else flags.get(name)

    return SystemContext(
        tls_verify=flag("tls_verify"),
        cert_dir=flag("cert_dir"),
        creds=parse_creds(flag("creds")),
        registry_token=flag("registry_token"),
        authfile=flag("authfile"),
        no_creds=bool(flag("no_creds")),
        registries_d=root.get("registries_d"),
        override_os=root.get("override_os"),
        override_arch=root.get("override_arch"),
        override_variant=root.get("override_variant"),
        tmpdir=root.get("tmpdir"),
        store=root.get("store"),
        retry_times=flags.get("retry_times") if flags.get("retry_times") is not None else 3,
        retry_delay=flags.get("retry_delay"),
    )


def policy_from_flags(ctx: click.Context) -> Any:
    """The trust policy the global --policy/--insecure-policy flags select (None: accept anything)."""
    root = ctx.find_root().obj or {}
    if root.get("insecure_policy"):
        return None
    from imagetool.signature.policy_eval import PolicyContext

    return PolicyContext.load(root.get("policy"), False)


def write_digestfile(path: str | None, digest: object) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(str(digest))
