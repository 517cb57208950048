"""The Go values `inspect` and `images` hand to templates and JSON: a time, a typed nil, a struct.

Apart from the template engine (gotemplate.py), which a command loads only for --format.
"""

from __future__ import annotations

import re
from typing import Any

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


class GoTime(str):
    """An RFC 3339 timestamp that prints like Go's time.Time: as JSON (RFC 3339 with nanoseconds, trailing
    zeros dropped: `08.73914Z`) through rfc3339(), in templates (`2006-01-02 15:04:05.99 +0000 UTC`) through go()."""

    def _parts(self) -> tuple[str, str, str, str] | None:
        m = _RFC3339.match(self)
        if not m:
            return None
        frac = (m.group(3) or "")[:9].rstrip("0")
        zone = m.group(4).upper()
        return m.group(1), m.group(2), frac, "Z" if zone in ("Z", "+00:00") else zone

    def rfc3339(self) -> str:
        parts = self._parts()
        if parts is None:
            return str(self)
        day, clock, frac, zone = parts
        return f"{day}T{clock}{'.' + frac if frac else ''}{zone}"

    def go(self) -> str:
        parts = self._parts()
        if parts is None:
            return str(self)
        day, clock, frac, zone = parts
        off = "+0000" if zone == "Z" else zone.replace(":", "")
        name = "UTC" if zone == "Z" else off
        return f"{day} {clock}{'.' + frac if frac else ''} {off} {name}"


class GoNil:
    """A typed Go nil (nil map, slice or pointer): prints as Go prints it, is empty, marshals as null."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"GoNil({self.text!r})"


NIL_MAP, NIL_SLICE, NIL_POINTER = GoNil("map[]"), GoNil("[]"), GoNil("<nil>")


class Struct(dict):  # type: ignore[type-arg]
    """A Go struct for templates: a field it lacks is an error, as Go reports it (a map gives <no value>).

    `tags`: field -> (JSON name, omitempty), what the json function writes (default: the field name, kept)."""

    def __init__(self, fields: Any = (), tags: dict[str, tuple[str, bool]] | None = None) -> None:
        super().__init__(fields)
        self.tags = tags or {}
