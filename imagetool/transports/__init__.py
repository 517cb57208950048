"""Transports by name, and `parse_image_name`, which splits "transport:rest" on the first colon.

A string whose prefix is no transport name is a reference into the local store
(`localhost/app:1`, `busybox`), as buildah and podman read bare names.
"""

from __future__ import annotations

import importlib
from typing import Any

from imagetool.errors import InvalidReference, Unsupported
from imagetool.transports.base import (
    DestinationTraits,
    ImageDestination,
    ImageReference,
    ImageSource,
    SystemContext,
)

__all__ = ["TRANSPORTS", "parse_image_name", "transport", "ImageReference", "ImageSource",
           "ImageDestination", "DestinationTraits", "SystemContext"]

#: transport name -> module defining parse(text) -> ImageReference
TRANSPORTS = {
    "oci": "imagetool.transports.oci",
    "oci-archive": "imagetool.transports.oci_archive",
    "docker-archive": "imagetool.transports.docker_archive",
    "dir": "imagetool.transports.dir",
    "docker": "imagetool.transports.docker",
    "local": "imagetool.transports.local",
    "containers-storage": "imagetool.transports.containers_storage",
}

#: transports skopeo knows that imagetool does not have: their prefix is refused, never read as a name
UNSUPPORTED = ("docker-daemon", "sif", "ostree", "tarball")


def transport(name: str) -> Any:
    try:
        return importlib.import_module(TRANSPORTS[name])
    except KeyError:
        raise InvalidReference(f"unknown transport {name!r}") from None  # the KeyError is this lookup: nothing to add


def parse_image_name(text: str, default: str = "local") -> ImageReference:
    """`oci:/p:tag`, `docker://x/y:z`, `dir:/p`, ... or a bare name: the local store's, or with
    default="docker" a registry's (as buildah push and pull read their arguments)."""
    if not text:
        raise InvalidReference("empty image name")
    name, sep, rest = text.partition(":")
    if sep and name in TRANSPORTS:
        return transport(name).parse(rest)  # type: ignore[no-any-return]
    if sep and name in UNSUPPORTED:
        raise Unsupported(f"transport {name!r} is not supported by imagetool "
                          f"(supported: {', '.join(sorted(TRANSPORTS))})")
    if sep and "/" not in name and "." not in name and not name.isdigit() and rest.startswith("/"):
        raise InvalidReference(f"invalid image name {text!r}: unknown transport {name!r} "
                               f"(known: {', '.join(sorted(TRANSPORTS))})")
    if default == "docker":
        return transport("docker").parse("//" + text)  # type: ignore[no-any-return]
    return transport("local").parse(text)  # type: ignore[no-any-return]
