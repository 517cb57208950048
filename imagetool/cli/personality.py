"""Run under the name `skopeo` (a link so named), imagetool speaks as skopeo where scripts read its words:
`--version` says `skopeo version X.Y.Z`, and a fatal error is one logrus line
(`time="..." level=fatal msg="..."`), the quoting inside msg included. Under its own name nothing changes."""

from __future__ import annotations

import os
import sys
import time

#: the skopeo release whose command line imagetool follows
SKOPEO_VERSION = "1.9.3"


def as_skopeo() -> bool:
    return os.path.basename(sys.argv[0] if sys.argv else "") == "skopeo"


def version_message() -> str:
    """click's version_option message (%(version)s is imagetool's own)."""
    if as_skopeo():
        return f"skopeo version {SKOPEO_VERSION} (imagetool %(version)s)"
    return "%(prog)s, version %(version)s"


def _go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote), as logrus quotes a field."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def error_line(text: str) -> str:
    """The one line a failure prints on stderr."""
    if not as_skopeo():
        return f"imagetool: {text}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()) + _offset()
    return f'time="{stamp}" level=fatal msg={_go_quote(text)}'


def _offset() -> str:
    off = time.strftime("%z", time.localtime())
    return "Z" if off in ("+0000", "-0000", "") else f"{off[:3]}:{off[3:]}"
