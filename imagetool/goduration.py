"""Go's time.ParseDuration: the one spelling of durations that skopeo, buildah and Dockerfiles share.

A duration is a sequence of decimal numbers, each with a unit (ns, us, µs, μs, ms, s, m, h), such as
"1h2m3.5s" or "300ms", with an optional sign in front; "0" alone needs no unit. Its value is whole
nanoseconds, as Go's is (a fraction finer than that is dropped), and it must fit Go's int64. The
callers differ only at the edges, which are parameters here: a HEALTHCHECK flag takes no sign, and
buildah's --retry-delay reads a bare number as seconds.
"""

from __future__ import annotations

import re

#: nanoseconds per unit; µ is the micro sign (U+00B5), μ the Greek letter mu (U+03BC): Go takes both
UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
         "h": 3600 * 10**9}
#: Go's time.Duration is an int64 of nanoseconds
_MAX = 2**63 - 1
#: one number and what follows it up to the next number: Go reads the unit the same way
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def nanoseconds(text: str, *, signed: bool = True, bare_unit: str | None = None) -> int:
    """The duration `text` in nanoseconds; ValueError when it is not one.

    signed: a leading + or - is allowed (Go's rule); bare_unit: the unit of a number written without
    one (Go requires a unit on every number but a lone 0)."""
    body, negative = text, False
    if body[:1] in ("+", "-"):
        if not signed:
            raise ValueError(f"invalid duration {text!r}")
        body, negative = body[1:], body[0] == "-"
    if bare_unit is not None and _NUMBER.fullmatch(body):
        body += bare_unit
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0, 0
    while pos < len(body):
        part = _PART.match(body, pos)
        assert part is not None  # every group may be empty
        whole, fraction, unit = part.group(1), part.group(2) or "", part.group(3)
        if not (whole or fraction) or unit not in UNITS:
            raise ValueError(f"invalid duration {text!r}")
        scale = UNITS[unit]
        total += int(whole or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction)
        if total > _MAX + negative:
            raise ValueError(f"invalid duration {text!r}: too long")
        pos = part.end()
    return -total if negative else total


def seconds(text: str, *, signed: bool = True, bare_unit: str | None = None) -> float:
    """The duration `text` in seconds (see `nanoseconds`)."""
    return nanoseconds(text, signed=signed, bare_unit=bare_unit) / 10**9
