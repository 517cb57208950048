"""Distribution API error codes mapped onto typed errors; `temporary` drives the retry loop."""

from __future__ import annotations

import json
from typing import Any

from imagetool.errors import BlobUnknown, ManifestUnknown, NotFound, RegistryError


class Unauthorized(RegistryError):
    """The registry wants credentials we do not have, or rejected the ones we sent."""


class Denied(RegistryError):
    """Authenticated, but not allowed to do this."""


class TooManyRequests(RegistryError):
    temporary = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(RegistryError):
    """A 5xx answer: worth another try."""

    temporary = True


class RegistryUnreachable(RegistryError):
    """No connection could be made (or it broke); worth another try unless `temporary` is cleared
    (an unknown host, a rejected certificate, a server silent past the timeout)."""

    temporary = True

    def __init__(self, message: str, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary


class NameUnknown(NotFound):
    """No such repository: a missing image too (exit 2)."""

    exit_code = 2


class UploadUnknown(RegistryError):
    pass


class ManifestInvalid(RegistryError):
    pass


class BlobUploadInvalid(RegistryError):
    pass


class DigestInvalid(RegistryError):
    pass


class UnsupportedOperation(RegistryError):
    pass


_BY_CODE: dict[str, type[Exception]] = {
    "UNAUTHORIZED": Unauthorized,
    "DENIED": Denied,
    "TOOMANYREQUESTS": TooManyRequests,
    "MANIFEST_UNKNOWN": ManifestUnknown,
    "MANIFEST_BLOB_UNKNOWN": BlobUnknown,
    "BLOB_UNKNOWN": BlobUnknown,
    "NAME_UNKNOWN": NameUnknown,
    "TAG_INVALID": ManifestInvalid,
    "MANIFEST_INVALID": ManifestInvalid,
    "MANIFEST_UNVERIFIED": ManifestInvalid,
    "NAME_INVALID": RegistryError,
    "BLOB_UPLOAD_UNKNOWN": UploadUnknown,
    "BLOB_UPLOAD_INVALID": BlobUploadInvalid,
    "DIGEST_INVALID": DigestInvalid,
    "SIZE_INVALID": BlobUploadInvalid,
    "UNSUPPORTED": UnsupportedOperation,
}

_BY_STATUS: dict[int, type[Exception]] = {401: Unauthorized, 403: Denied, 404: NotFound, 429: TooManyRequests}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    import time

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def registry_text(body: bytes) -> str:
    """The registry's own words for a failed request, as containers/image prints them
    ("unauthorized: authentication required"): scripts match these. "" if the body has none."""
    try:
        doc = json.loads(body or b"{}")
        errors = doc.get("errors") or [] if isinstance(doc, dict) else []
    except ValueError:
        return ""
    parts = []
    for e in errors:
        if not isinstance(e, dict):
            continue
        code = str(e.get("code", "")).lower().replace("_", " ")
        message = str(e.get("message", "") or "")
        parts.append(f"{code}: {message}" if code and message else code or message)
    return "; ".join(p for p in parts if p)


def error_from_response(status: int, body: bytes, headers: Any, what: str) -> Exception:
    """The typed error for a failed response; `what` says which request it was."""
    codes: list[tuple[str, str]] = []
    try:
        doc = json.loads(body or b"{}")
        for e in doc.get("errors") or []:
            codes.append((str(e.get("code", "")), str(e.get("message", "")) or str(e.get("detail", ""))))
    except (ValueError, AttributeError):
        pass
    detail = "; ".join(f"{c}: {m}" if m else c for c, m in codes)
    if not detail:
        text = body[:200].decode("utf-8", "replace").strip() if body else ""
        detail = f"HTTP {status}" + (f": {text}" if text and "<" not in text[:1] else "")
    else:
        detail = f"HTTP {status}: {detail}"
    message = f"{what}: {detail}"
    cls: type[Exception] | None = None
    for code, _ in codes:
        cls = _BY_CODE.get(code.upper())
        if cls is not None:
            break
    if status == 401:
        cls = Unauthorized
    if status == 429 or cls is TooManyRequests:
        return TooManyRequests(message, parse_retry_after(headers.get("Retry-After")))
    if cls is None:
        cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else RegistryError)
    return cls(message)
