"""imagetool: copy, inspect, sign, run and build OCI container images.

Library entry points (import cost is kept low: heavy modules load on first use):
    parse_image_name("oci:/path:tag")  -> ImageReference
    copy_image(src_ref, dst_ref, CopyOptions(...)) -> CopyResult
    LayoutStore(path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "copy_image", "parse_image_name", "LayoutStore"]

if TYPE_CHECKING:
    from imagetool.copy import copy_image
    from imagetool.store.layout import LayoutStore
    from imagetool.transports import parse_image_name


def __getattr__(name: str) -> Any:
    if name == "copy_image":
        from imagetool.copy import copy_image

        return copy_image
    if name == "parse_image_name":
        from imagetool.transports import parse_image_name

        return parse_image_name
    if name == "LayoutStore":
        from imagetool.store.layout import LayoutStore

        return LayoutStore
    raise AttributeError(name)
