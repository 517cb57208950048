"""`imagetool generate-key`, `verify`, `standalone-sign` and `standalone-verify`."""

from __future__ import annotations

import sys
from typing import Any

import click

from imagetool.cli.options import registry_options, system_context


@click.command("generate-key")
@click.option("--output-prefix", required=True, metavar="PREFIX", help="Write PREFIX.private and PREFIX.pub.")
@click.option("--passphrase-file", metavar="PATH", help="Passphrase for the private key (first line).")
def generate_key(output_prefix: str, passphrase_file: str | None) -> None:
    """Generate a sigstore (cosign) ECDSA P-256 key pair, the private key encrypted."""
    from imagetool.signature import keys, simple

    passphrase = simple.read_passphrase(passphrase_file)
    if passphrase is None:
        passphrase = click.prompt("Passphrase for the private key", hide_input=True, confirmation_prompt=True,
                                  default="", show_default=False, err=True)
    private, public = keys.generate(output_prefix, passphrase)
    click.echo(f"Key written to {private!r} and {public!r}")


@click.command()
@click.argument("image")
@click.option("--policy", metavar="PATH",
              help="Trust policy (default: the global --policy, then the user's, then the system's).")
@click.option("--registries.d", "registries_d", metavar="DIR", help="Registries.d directory (lookaside storage).")
@click.option("--identity", metavar="REF", help="Docker reference to judge the image as (for dir: and oci:).")
@registry_options(retries=False)
@click.pass_context
def verify(ctx: click.Context, image: str, policy: str | None, registries_d: str | None, identity: str | None,
           **flags: Any) -> None:
    """Check IMAGE against the trust policy from its manifest and signatures alone."""
    from imagetool.reference import parse as parse_reference
    from imagetool.signature.policy_eval import PolicyContext
    from imagetool.transports import parse_image_name

    root = ctx.find_root().obj or {}
    ref = parse_image_name(image)
    sysctx = system_context(ctx, **flags)
    registries_d = registries_d or root.get("registries_d")
    context = PolicyContext.load(policy or root.get("policy"), bool(root.get("insecure_policy")) and not policy)
    source = ref.open_source(sysctx)
    try:
        raw, _ = source.get_manifest()
        verdict = context.check(ref, source, raw, registries_d,
                                identity=parse_reference(identity) if identity else None)
    finally:
        source.close()
    click.echo(f"{ref}: {verdict}")


@click.command("standalone-sign")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.argument("docker_reference")
@click.argument("fingerprint")
@click.option("-o", "--output", required=True, metavar="SIGNATURE", help="Write the signature to SIGNATURE.")
@click.option("--passphrase-file", metavar="PATH", help="Passphrase for the GPG key (first line).")
def standalone_sign(manifest: str, docker_reference: str, fingerprint: str, output: str,
                    passphrase_file: str | None) -> None:
    """Sign MANIFEST as DOCKER_REFERENCE with the GPG key FINGERPRINT (a simple signature)."""
    from imagetool.errors import SignatureError
    from imagetool.reference import parse as parse_reference
    from imagetool.signature import simple
    from imagetool.outputs import write_output

    parse_reference(docker_reference)  # must be valid; it is signed as written, like skopeo does
    try:
        with open(manifest, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise SignatureError(f"reading manifest {manifest}: {err.strerror or err}") from err
    blob = simple.sign(raw, docker_reference, fingerprint, simple.read_passphrase(passphrase_file))
    try:
        write_output(output, blob)
    except OSError as err:
        raise SignatureError(f"writing signature {output}: {err.strerror or err}") from err


@click.command("standalone-verify")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.argument("docker_reference")
@click.argument("fingerprint")
@click.argument("signature", type=click.Path(dir_okay=False))
def standalone_verify(manifest: str, docker_reference: str, fingerprint: str, signature: str) -> None:
    """Verify SIGNATURE of MANIFEST as DOCKER_REFERENCE by key FINGERPRINT (the user's GPG keyring)."""
    from imagetool.errors import SignatureError
    from imagetool.signature import standalone

    try:
        with open(manifest, "rb") as f:
            raw = f.read()
        with open(signature, "rb") as f:
            blob = f.read()
    except OSError as err:
        raise SignatureError(f"reading {err.filename}: {err.strerror or err}") from err
    fp, digest = standalone.verify_manifest_signature(blob, raw, docker_reference, fingerprint)
    sys.stdout.write(f"Signature verified, digest {digest}\n")
