"""JSON bytes the way Go's encoding/json writes them.

Manifests imagetool creates are serialised like containers/image does (compact, Go field
order, HTML-safe escapes), so the same conversion gives the same digest in both tools.
"""

from __future__ import annotations

import json
from typing import Any

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def dumps(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if any(c in text for c in _ESCAPES):
        text = "".join(_ESCAPES.get(c, c) for c in text)
    return text.encode("utf-8")


def loads(raw: bytes | str, what: str = "JSON") -> Any:
    """json.loads with a ValueError naming what was being read."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"invalid {what}: {err}") from err
