"""Flag groups shared by several subcommands, and turning flags into a SystemContext."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import click

from imagetool.errors import UsageError
from imagetool.transports.base import SystemContext

F = Callable[..., Any]


def tls_verify_option(name: str = "--tls-verify") -> F:
    return click.option(name, type=click.BOOL, default=None, metavar="BOOL",
                        help="Require HTTPS and verify certificates (default true).")


def registry_options(side: str = "", retries: bool = True) -> Callable[[F], F]:
    """The flags that reach a registry: credentials, TLS and (unless `retries` is off) retries.

    `side` ("src"/"dest") prefixes the credential and TLS flags, as skopeo's copy and sync do.
    """
    pre, dest = (f"--{side}-", f"{side}_") if side else ("--", "")
    creds_alias = [f"--{side[0]}creds"] if side else []  # skopeo's --screds / --dcreds
    options = [
        click.option(f"{pre}creds", *creds_alias, f"{dest}creds", metavar="USER[:PASS]",
                     help="Registry credentials."),
        click.option(f"{pre}username", f"{dest}username", metavar="USER", help=f"Registry user (with {pre}password)."),
        click.option(f"{pre}password", f"{dest}password", metavar="PASS", help="Registry password."),
        click.option(f"{pre}registry-token", f"{dest}registry_token", metavar="TOKEN",
                     help="Bearer token for the registry."),
        click.option(f"{pre}no-creds", f"{dest}no_creds", is_flag=True, help="Access the registry anonymously."),
        click.option(f"{pre}tls-verify", f"{dest}tls_verify", type=click.BOOL, default=None, metavar="BOOL",
                     help="Require HTTPS and verify certificates (default true)."),
        click.option(f"{pre}cert-dir", f"{dest}cert_dir", metavar="DIR",
                     help="Certificates (*.crt, *.cert, *.key) for the registry."),
        click.option(f"{pre}authfile", f"{dest}authfile", metavar="PATH", help="Auth file."),
    ]
    if retries:
        options += [
            click.option("--retry-times", type=int, default=None, help="Retries for transient network errors."),
            click.option("--retry-delay", type=float, default=None, help="Seconds between retries (default: backoff)."),
        ]
    return _stacked(options)


def shared_blob_dir_option(side: str = "") -> F:
    """skopeo's --shared-blob-dir (--src-/--dest- in copy): oci: layouts whose blobs live in one directory."""
    pre, dest = (f"--{side}-", f"{side}_") if side else ("--", "")
    return click.option(f"{pre}shared-blob-dir", f"{dest}shared_blob_dir", metavar="DIR",
                        help="Blobs of oci: layouts live in DIR, shared by several layouts.")


def daemon_host_option(side: str = "") -> F:
    """skopeo's --daemon-host (--src-/--dest- in copy) reaches the docker-daemon: transport, which imagetool does
    not have: refused by name rather than as an unknown flag."""
    pre = f"--{side}-" if side else "--"

    def refuse(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            raise UsageError(f"{pre}daemon-host: the docker-daemon: transport is not supported by imagetool")

    return click.option(f"{pre}daemon-host", metavar="HOST", expose_value=False, callback=refuse,
                        help="(docker-daemon: only; not supported)")


def signing_options(identity: bool = True) -> Callable[[F], F]:
    """The signing flags of the commands that write images (--sign-identity where skopeo copy has it)."""
    options = [
        click.option("--sign-by", metavar="FINGERPRINT", help="Sign with this GPG key."),
        click.option("--sign-by-sigstore-private-key", metavar="PATH", help="Sign with this sigstore private key."),
        click.option("--sign-passphrase-file", metavar="PATH", help="Passphrase for the signing key."),
    ]
    if identity:
        options.append(click.option("--sign-identity", metavar="REF",
                                    help="Identity the signature claims (default: destination)."))
    return _stacked(options)


def platform_parts(platform: str | None, os_: str | None, arch: str | None,
                   variant: str | None) -> tuple[str | None, str | None, str | None]:
    """(os, arch, variant) from --platform OS/ARCH[/VARIANT], or from --os/--arch/--variant (not both)."""
    if not platform:
        return os_, arch, variant
    if os_ or arch or variant:
        raise UsageError("--platform cannot be combined with --os, --arch or --variant")
    from imagetool.descriptor import Platform

    try:
        parsed = Platform.parse(platform)
    except ValueError as err:
        raise UsageError(f"--platform: {err}") from err
    return parsed.os, parsed.architecture, parsed.variant or None


def etc_options() -> Callable[[F], F]:
    """docker's and buildah's flags for a container's /etc/hosts and /etc/resolv.conf (run and build)."""
    return _stacked([
        click.option("--add-host", "add_hosts", multiple=True, metavar="NAME:IP", help="Add a line to /etc/hosts."),
        click.option("--dns", multiple=True, metavar="IP", help="A nameserver, instead of the host's."),
        click.option("--dns-search", multiple=True, metavar="DOMAIN", help="A search domain, instead of the host's."),
        click.option("--dns-option", multiple=True, metavar="OPTION", help="A resolver option, instead of the host's."),
        click.option("--no-hosts", is_flag=True, help="Keep the image's own /etc/hosts."),
    ])


def etc_settings(flags: dict[str, Any]) -> Any:
    """The EtcSettings etc_options() asked for (their keys are taken out of `flags`)."""
    import ipaddress

    from imagetool.runtime.etcfiles import EtcSettings
    from imagetool.runtime.flags import parse_add_host

    dns = list(flags.pop("dns", ()))
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError as err:
            raise UsageError(f"--dns {server!r}: expected an IP address") from err
    return EtcSettings([parse_add_host(h) for h in flags.pop("add_hosts", ())], dns,
                       list(flags.pop("dns_search", ())), list(flags.pop("dns_option", ())),
                       bool(flags.pop("no_hosts", False)))


def _stacked(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying `options` so that --help lists them in this order."""
    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f
    return apply


def signers_from_flags(flags: dict[str, Any]) -> list[Any]:
    """The signers --sign-by / --sign-by-sigstore-private-key ask for (checked before anything is copied)."""
    if not (flags["sign_by"] or flags["sign_by_sigstore_private_key"]):
        return []
    from imagetool.signature.signers import make_signers

    return make_signers(flags["sign_by"], flags["sign_by_sigstore_private_key"], flags["sign_passphrase_file"])


def parse_creds(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not user:
        raise UsageError("credentials must be USERNAME[:PASSWORD]")
    if not sep:
        password = click.prompt(f"Password for {user}", hide_input=True, err=True)
    return user, password


def credentials(creds: str | None, username: str | None, password: str | None) -> tuple[str, str] | None:
    """--creds USER[:PASS], or --username with --password (skopeo's two spellings; not both)."""
    if username is None and password is None:
        return parse_creds(creds)
    if creds:
        raise UsageError("--creds and --username/--password cannot be used together")
    if not username or password is None:
        raise UsageError("--username and --password must be given together")
    return username, password


def system_context(ctx: click.Context, prefix: str = "", **flags: Any) -> SystemContext:
    """A SystemContext from the global options plus a command's (optionally src-/dest-prefixed) flags."""
    root = ctx.find_root().obj or {}

    def flag(name: str) -> Any:
        value = flags.get(f"{prefix}{name}")
        return value if value is not None else flags.get(name)

    return SystemContext(
        tls_verify=flag("tls_verify"),
        cert_dir=flag("cert_dir"),
        creds=credentials(flag("creds"), flag("username"), flag("password")),
        registry_token=flag("registry_token"),
        authfile=flag("authfile"),
        no_creds=bool(flag("no_creds")),
        registries_d=root.get("registries_d"),
        override_os=root.get("override_os"),
        override_arch=root.get("override_arch"),
        override_variant=root.get("override_variant"),
        tmpdir=root.get("tmpdir"),
        store=root.get("store"),
        oci_shared_blob_dir=flag("shared_blob_dir"),
        retry_times=3 if flags.get("retry_times") is None else int(flags["retry_times"]),
        retry_delay=flags.get("retry_delay"),
    )


def policy_from_flags(ctx: click.Context) -> Any:
    """The trust policy the global --policy/--insecure-policy flags select."""
    root = ctx.find_root().obj or {}
    if root.get("insecure_policy"):
        from imagetool.copy import ACCEPT_ANYTHING

        return ACCEPT_ANYTHING
    from imagetool.signature.policy_eval import PolicyContext

    return PolicyContext.load(root.get("policy"), False)


def write_digestfile(path: str | None, digest: object) -> None:
    if path:
        from imagetool.outputs import write_output

        write_output(path, str(digest).encode())
