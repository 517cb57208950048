"""containers-storage: references, read as containers/image's storage transport reads them.

    [DRIVER@GRAPHROOT+RUNROOT:OPTIONS]NAME[:TAG|@DIGEST][@IMAGEID]
    NAME (short names normalised: busybox -> docker.io/library/busybox:latest)
    IMAGEID or a unique prefix of one (at least 3 characters) of an image in the store, or @IMAGEID
"""

from __future__ import annotations

import os
import re
from typing import Callable

from imagetool import reference as dref
from imagetool.errors import InvalidReference
from imagetool.reference import DockerReference
from imagetool.transports.containers_storage.store import StoreSpec

TRANSPORT_NAME = "containers-storage"
MIN_TRUNCATED_ID = 3
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_store_spec(text: str) -> tuple[StoreSpec | None, str]:
    """Split a leading `[...]` store specification off `text`."""
    if not text.startswith("["):
        return None, text
    close = text.find("]")
    if close < 1:
        raise InvalidReference(f"{TRANSPORT_NAME}: store specifier in {text!r} did not end")
    spec, rest = text[1:close], text[close + 1:]
    driver = ""
    if "@" in spec:
        driver, spec = spec.split("@", 1)
        if not driver or not spec:
            raise InvalidReference(f"{TRANSPORT_NAME}: invalid store specifier {text[:close + 1]!r}")
    elif not spec:
        raise InvalidReference(f"{TRANSPORT_NAME}: empty store specifier")
    options: tuple[str, ...] = ()
    if ":" in spec:
        spec, opts = spec.split(":", 1)
        options = tuple(opts.split(","))
    runroot = ""
    if "+" in spec:
        spec, runroot = spec.split("+", 1)
    for path in (spec, runroot):
        if path and not os.path.isabs(path):
            raise InvalidReference(f"{TRANSPORT_NAME}: path {path!r} is not absolute")
    return StoreSpec(driver, spec, runroot, options), rest


def parse_name_and_id(text: str, find_image: Callable[[str], str | None]) -> tuple[DockerReference | None, str]:
    """NAME[@IMAGEID], IMAGEID or @IMAGEID -> (named reference or None, image id or "").

    `find_image(prefix)` is the id of the one image in the store whose id starts with `prefix`, if any
    (a truncated id is accepted only when it names a stored image, as containers/image does)."""
    if not text:
        raise InvalidReference(f"{TRANSPORT_NAME}: empty reference")
    ref, image_id = text, ""
    at = ref.rfind("@")
    if at != -1:
        possible = ref[at + 1:]
        if not possible:
            raise InvalidReference(f"{TRANSPORT_NAME}: empty trailing digest or ID in {text!r}")
        if not _DIGEST.match(possible):
            if _HEX64.match(possible):
                image_id = possible
            elif len(possible) >= MIN_TRUNCATED_ID and (found := find_image(possible)):
                image_id = found
            else:
                raise InvalidReference(f"{TRANSPORT_NAME}: {possible!r} does not look like an image ID or "
                                       "digest, and did not match any local image")
            ref = ref[:at]
    if not image_id and len(ref) >= MIN_TRUNCATED_ID and not any(c in ref for c in "@:"):
        found = find_image(ref)
        if found:
            image_id, ref = found, ""
    named = None
    if ref:
        try:
            named = dref.parse(ref).with_default_tag()
        except InvalidReference as err:
            raise InvalidReference(f"{TRANSPORT_NAME}: parsing named reference {ref!r}: {err}") from err
        if _HEX64.match(ref):
            raise InvalidReference(f"{TRANSPORT_NAME}: {ref!r}: a 64-character hexadecimal string names no "
                                   "image in the store")
    return named, image_id
