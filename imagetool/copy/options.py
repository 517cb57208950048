"""What a copy is asked to do, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from imagetool.copy.progress import Progress  # at run time too: typing.get_type_hints(CopyOptions) resolves
from imagetool.descriptor import Platform
from imagetool.digest import Digest
from imagetool.reference import DockerReference
from imagetool.transports.base import ImageReference, ImageSource, SystemContext



class Signer(Protocol):
    def sign(self, manifest: bytes, identity: DockerReference) -> bytes:
        """A serialized signature of `manifest` claiming `identity`."""


class PolicyChecker(Protocol):
    def check(self, reference: ImageReference, source: ImageSource, manifest: bytes,
              registries_d: str | None) -> str:
        """Raise PolicyRejected unless the trust policy accepts the image; say which requirement decided."""


class AcceptAnything:
    """A caller's explicit decision to check no trust policy (--insecure-policy, or an image the
    caller made itself, such as a build result)."""

    def check(self, reference: ImageReference, source: ImageSource, manifest: bytes,
              registries_d: str | None) -> str:
        return ""


#: pass as CopyOptions.policy to accept any source; None means the default trust policy
ACCEPT_ANYTHING = AcceptAnything()


@dataclass
class CopyOptions:
    """How copy_image copies: each side's SystemContext, which instances of an index, the manifest format
    and layer compression at the destination, signing, and the trust policy the source must satisfy."""

    src_ctx: SystemContext = field(default_factory=SystemContext)
    dest_ctx: SystemContext = field(default_factory=SystemContext)
    #: for an index source: copy the system's instance, every instance, or the index alone
    multi_arch: str = "system"
    #: restrict an "all" copy to these platforms (empty: every instance)
    platforms: Sequence[Platform] = ()
    #: None keeps the source format where the destination accepts it; "oci" or "v2s2" forces one
    format: str | None = None
    preserve_digests: bool = False
    #: None keeps each layer's compression where the destination allows it
    compression: str | None = None
    compression_level: int | None = None
    #: store layers uncompressed
    decompress: bool = False
    remove_signatures: bool = False
    signers: Sequence[Signer] = ()
    sign_identity: DockerReference | None = None
    #: carry the OCI 1.1 referrers (signatures, SBOMs) of the copied manifests (registry to registry)
    referrers: bool = False
    #: the trust policy for the source; None: the default one (the user's policy.json, else the
    #: system's, else an error), never "accept anything", which takes ACCEPT_ANYTHING
    policy: PolicyChecker | None = None
    max_parallel: int = 6
    progress: Progress | None = None


@dataclass(frozen=True)
class CopyResult:
    """What copy_image wrote: the destination's top-level manifest (its digest names the image there)."""

    manifest: bytes
    media_type: str
    #: what the policy said when it accepted the source ("" without a policy)
    policy_verdict: str = ""

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)
