"""Evaluate the trust policy for an image: one function per requirement type.

The image is judged from its manifest bytes and signatures alone (no layer is read):
simple signatures come from `source.get_signatures()` (and, for registries, the lookaside
storage registries.d names); sigstore signatures from those envelopes and from the
`sha256-<hex>.sig` attachment the source can read (`transports.envelopes.source_attachments`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from imagetool.digest import Digest
from imagetool.errors import ImagetoolError, PolicyRejected, SignatureError
from imagetool.reference import DockerReference
from imagetool.signature import identity as idmatch
from imagetool.signature import policy as p
from imagetool.signature.payload import Payload, manifest_matches
from imagetool.transports import envelopes
from imagetool.transports.base import ImageReference, ImageSource

SYSTEM_POLICY = "/etc/containers/policy.json"
USER_POLICY = "~/.config/containers/policy.json"


def user_policy_path() -> str:
    return os.path.expanduser(USER_POLICY)  # $HOME, as containers/image's homedir.Get()


def default_policy_path() -> str | None:
    """The user's policy, else the system's (containers/image's order); None when neither exists."""
    for path in (user_policy_path(), SYSTEM_POLICY):
        if os.path.exists(path):
            return path
    return None


@dataclass
class _Image:
    """What the requirements look at, with signatures fetched once and only when needed."""

    reference: ImageReference
    source: ImageSource
    manifest: bytes
    identity: DockerReference | None
    registries_d: str | None
    _envelopes: list[bytes] | None = None
    #: sigstore signatures, and the errors of envelopes that did not parse
    _sigstore: list[envelopes.SigstoreSignature | SignatureError] | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)

    def all_envelopes(self) -> list[bytes]:
        if self._envelopes is None:
            ref = self.reference.docker_reference()
            if self.reference.transport_name == "docker" and ref is not None:
                # registries.d decides where a registry's signatures live
                found = envelopes.registry_signatures(self.source, ref, self.digest, self.registries_d)
                # and signatures stored as OCI 1.1 referrers (the API, else the tag schema)
                found += [envelopes.serialize(s) for s in envelopes.referrer_signatures(self.source, self.digest)]
            else:
                # where signatures are attachments (OCI layouts, the local store), those of the manifest
                # being judged, which need not be the source's top level; elsewhere (dir:) the source's
                attached = envelopes.source_attachments(self.source, self.digest)
                found = (list(self.source.get_signatures()) if attached is None
                         else [envelopes.serialize(sig) for sig in attached])
            unique: list[bytes] = []
            for env in found:
                if env not in unique:
                    unique.append(env)
            self._envelopes = unique
        return self._envelopes

    def simple_signatures(self) -> list[bytes]:
        out = []
        for env in self.all_envelopes():
            if env[:1] != b"\x00":
                out.append(env)
        return out

    def sigstore_signatures(self) -> list[envelopes.SigstoreSignature | SignatureError]:
        if self._sigstore is None:
            found: list[envelopes.SigstoreSignature | SignatureError] = []
            for env in self.all_envelopes():
                if env[:1] == b"\x00":
                    try:
                        sig = envelopes.parse(env)
                    except SignatureError as err:
                        found.append(err)  # judged (and reported) with the others
                        continue
                    if isinstance(sig, envelopes.SigstoreSignature):
                        found.append(sig)
            self._sigstore = found
        return self._sigstore


def _check_payload(image: _Image, payload: Payload, rule: p.Identity) -> None:
    if not manifest_matches(image.manifest, payload.manifest_digest):
        raise SignatureError(f"signature is for manifest {payload.manifest_digest}, not this image's "
                             f"{image.digest}")
    signed = payload.identity()
    if idmatch.needs_image_reference(rule) and image.identity is None:
        raise SignatureError(f"the image has no docker reference to compare with the signed identity {signed}")
    if not idmatch.matches(rule, image.identity, signed):
        raise _headed(SignatureError(f"signature claims identity {signed}, which {idmatch.describe(rule)} does not "
                                     f"accept for {image.identity or 'this image'}"),
                      f'Signature for identity "{signed}" is not accepted')


#: containers/image's words for a rejection, which scripts match; our detail follows them
_NO_SIGNATURE = "A signature was required, but no signature exists"


def _headed(err: ImagetoolError, headline: str) -> ImagetoolError:
    """`err` carrying containers/image's words for it (PolicyContext.check puts them first)."""
    err.headline = headline  # type: ignore[attr-defined]
    return err


def _first_valid(what: str, signatures: list, check: Callable[[object], str],  # type: ignore[type-arg]
                 invalid: str) -> str:
    """The verdict of the first signature `check` accepts; else a rejection headed by the first failure's
    words (`invalid` when it has none: a signature that does not verify)."""
    if not signatures:
        raise _headed(PolicyRejected(f"{what}: the image has no signature of that kind"), _NO_SIGNATURE)
    reasons = []
    headline = None
    for i, sig in enumerate(signatures, 1):
        try:
            return check(sig)
        except (SignatureError, ImagetoolError) as err:
            reasons.append(f"signature {i}: {err}")
            headline = headline or getattr(err, "headline", None)
    raise _headed(PolicyRejected(f"{what}: no valid signature ({'; '.join(reasons)})"), headline or invalid)


def eval_insecure(req: p.InsecureAcceptAnything, image: _Image) -> str:
    return "insecureAcceptAnything"


def eval_reject(req: p.Reject, image: _Image) -> str:
    raise _headed(PolicyRejected("the policy rejects every image in this scope"),
                  f"Running image {image.reference} is rejected by policy.")


def eval_signed_by(req: p.SignedBy, image: _Image) -> str:
    what = f"signedBy (GPG keys {req.source})"
    signatures = image.simple_signatures()
    if not signatures:
        raise _headed(PolicyRejected(f"{what}: the image has no simple signature"), _NO_SIGNATURE)
    from imagetool.signature import simple  # gnupg: only when a policy asks for GPG signatures

    with simple.Keyring(req.keys) as ring:
        def check(blob: object) -> str:
            verified = ring.verify(blob)  # type: ignore[arg-type]
            _check_payload(image, verified.payload, req.identity)
            return (f"signedBy: signed by GPG key {verified.fingerprint} as "
                    f"{verified.payload.docker_reference} ({idmatch.describe(req.identity)})")

        return _first_valid(what, signatures, check, "Invalid GPG signature")


def eval_sigstore_signed(req: p.SigstoreSigned, image: _Image) -> str:
    what = f"sigstoreSigned ({'key ' if req.keys else ''}{req.source})"
    from imagetool.signature.sigstore_trust import TrustRoot  # cryptography: only for sigstore requirements

    try:
        trust = TrustRoot.of(req)
    except SignatureError as err:
        raise PolicyRejected(f"{what}: {err}") from err

    def check(sig: object) -> str:
        if isinstance(sig, SignatureError):
            raise sig
        payload = trust.verify(sig)  # type: ignore[arg-type]
        _check_payload(image, payload, req.identity)
        return f"sigstoreSigned: signed as {payload.docker_reference} ({idmatch.describe(req.identity)})"

    signatures = image.sigstore_signatures()
    if not signatures:
        raise _headed(PolicyRejected(f"{what}: the image has no sigstore signature"), _NO_SIGNATURE)
    return _first_valid(what, signatures, check, "cryptographic signature verification failed")


EVALUATORS: dict[type, Callable] = {  # type: ignore[type-arg]
    p.InsecureAcceptAnything: eval_insecure,
    p.Reject: eval_reject,
    p.SignedBy: eval_signed_by,
    p.SigstoreSigned: eval_sigstore_signed,
}


def _rejection(err: ImagetoolError, detail: str) -> PolicyRejected:
    """containers/image's words first ("Invalid GPG signature"), then which scope and requirement said no."""
    headline = getattr(err, "headline", None)
    if not headline:
        return PolicyRejected(detail)
    return _headed(PolicyRejected(f"{headline} ({detail})"), headline)  # type: ignore[return-value]


class PolicyContext:
    """A loaded policy, ready to judge sources (the copy pipeline's PolicyChecker)."""

    def __init__(self, policy: p.Policy) -> None:
        self.policy = policy

    @classmethod
    def load(cls, path: str | None, insecure: bool) -> PolicyContext:
        """The policy at `path` (default: the user's, then the system's); insecure accepts anything.

        With no policy file at all this fails: a missing policy never means "accept anything"."""
        if insecure:
            return cls(p.Policy([p.InsecureAcceptAnything()], {}, "--insecure-policy"))
        chosen = path or default_policy_path()
        if chosen is None:
            raise p.PolicyError(f"no policy.json file found at any of the following: \"{user_policy_path()}\", "
                                f"\"{SYSTEM_POLICY}\" (use --policy FILE, or --insecure-policy)")
        return cls(p.load(chosen))

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "") -> PolicyContext:
        return cls(p.parse(data, path))

    def check(self, reference: ImageReference, source: ImageSource, manifest: bytes,
              registries_d: str | None, *, identity: DockerReference | None = None) -> str:
        """One line naming the scope and requirement that accepted the image, or PolicyRejected.

        `identity` stands in for the reference's own docker reference (dir: and oci: have none).
        """
        scope, requirements = self.policy.requirements_for(reference.transport_name, reference.policy_scopes())
        image = _Image(reference, source, manifest, identity or reference.docker_reference(), registries_d)
        verdicts = []
        for req in requirements:
            try:
                verdicts.append(EVALUATORS[type(req)](req, image))
            except PolicyRejected as err:
                raise _rejection(err, f"{reference} rejected by policy scope {scope}: {err}") from err
            except ImagetoolError as err:
                raise _rejection(err, f"{reference} rejected by policy scope {scope}: {req.kind}: {err}") \
                    .citing_cause() from err
        return f"accepted by policy scope {scope}: " + "; ".join(verdicts)
