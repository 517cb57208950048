"""`imagetool login REGISTRY` / `imagetool logout REGISTRY` (skopeo's flags)."""

from __future__ import annotations

import sys

import click

from imagetool.errors import UsageError


def _key(registry: str) -> str:
    """`docker://host/ns` or `https://host/` -> `host/ns`; docker.io spellings collapse to docker.io."""
    key = registry
    for prefix in ("docker://", "https://", "http://"):
        key = key.removeprefix(prefix)
    key = key.rstrip("/")
    if not key or "@" in key:
        raise UsageError(f"invalid registry {registry!r}")
    host, _, rest = key.partition("/")
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = "docker.io"
    return f"{host}/{rest}" if rest else host


@click.command()
@click.argument("registry")
@click.option("-u", "--username", metavar="USER", help="User name.")
@click.option("-p", "--password", metavar="PASS", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--authfile", metavar="PATH", help="Auth file to write (default $XDG_RUNTIME_DIR/containers/auth.json).")
@click.option("--cert-dir", metavar="DIR", help="Certificates for the registry.")
@click.option("--tls-verify", type=click.BOOL, default=None, metavar="BOOL", help="Require HTTPS and verify.")
@click.option("--get-login", is_flag=True, help="Print the user name stored for REGISTRY.")
@click.option("-v", "--verbose", is_flag=True, help="Say which file was written.")
def login(registry: str, username: str | None, password: str | None, password_stdin: bool, authfile: str | None,
          cert_dir: str | None, tls_verify: bool | None, get_login: bool, verbose: bool) -> None:
    """Check credentials against REGISTRY and store them in the auth file."""
    from imagetool.registry import credentials
    from imagetool.registry.client import Client, ClientOptions

    key = _key(registry)
    if get_login:
        user = credentials.stored_user(key, authfile)
        if user is None:
            raise UsageError(f"not logged into {key}")
        click.echo(user)
        return
    if password and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        username = click.prompt("Username", err=True)
    if password is None:
        password = click.prompt("Password", hide_input=True, err=True)
    host = key.split("/")[0]
    client = Client(host, ClientOptions(tls_verify=tls_verify, cert_dir=cert_dir, creds=(str(username), password),
                                        no_creds=False))
    client.check_login()
    path = credentials.store(key, str(username), password, authfile)
    click.echo("Login Succeeded!" + (f" (credentials in {path})" if verbose else ""))


@click.command()
@click.argument("registry", required=False)
@click.option("--authfile", metavar="PATH", help="Auth file to edit.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove the credentials of every registry.")
def logout(registry: str | None, authfile: str | None, all_: bool) -> None:
    """Remove the stored credentials for REGISTRY."""
    from imagetool.registry import credentials

    if all_:
        credentials.erase(None, authfile)
        click.echo("Removed login credentials for all registries")
        return
    if not registry:
        raise UsageError("logout needs a REGISTRY or --all")
    key = _key(registry)
    if not credentials.erase(key, authfile):
        raise UsageError(f"not logged into {key}")
    click.echo(f"Removed login credentials for {key}")
