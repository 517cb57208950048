"""The error tree. The library raises these; only the CLI turns them into one line.

ImagetoolError (exit 1)
  InvalidReference         a reference or transport name that does not parse
  InvalidDigest            malformed or unsupported digest
  IntegrityError           content that does not match what describes it
    DigestMismatch
    SizeMismatch
  ManifestError            unusable manifest or config
    UnsupportedManifest    schema 1, unknown media types
  NotFound
    ManifestUnknown        the image is missing: exit 2 (skopeo's code)
    BlobUnknown
  Unsupported              an operation a transport cannot do
  LayoutError              broken OCI layout, archive or dir image
  StoreLocked
  UnsafeContent            hostile tar entries and path escapes
  RegistryError            (registry/errors.py adds Unauthorized, Denied, TooManyRequests)
  SignatureError / PolicyRejected
  ContainerError / BuildError
  ConfigError              a configuration file of the wrong shape (sync YAML)

This module imports nothing from imagetool so that every layer can use it.
"""

from __future__ import annotations

from typing import Self


class ImagetoolError(Exception):
    """Root of every error imagetool raises on purpose."""

    exit_code = 1
    #: whether retrying the same operation may succeed (drives retry loops)
    temporary = False
    #: whether the one-line message goes on with the explicit cause's (see citing_cause)
    cites_cause = False

    def citing_cause(self) -> Self:
        """This error, its one-line message going on with its cause's:
        `raise BuildError("pulling it failed").citing_cause() from err` reads "pulling it failed: <why>".
        Without it the cause stays in __cause__ for --debug tracebacks and library callers only."""
        self.cites_cause = True
        return self


class InvalidReference(ImagetoolError):
    pass


class InvalidDigest(ImagetoolError):
    pass


class IntegrityError(ImagetoolError):
    pass


class DigestMismatch(IntegrityError):
    def __init__(self, expected: object, actual: object) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(IntegrityError):
    def __init__(self, what: object, expected: int, actual: int) -> None:
        super().__init__(f"size mismatch for {what}: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual


class ManifestError(ImagetoolError):
    pass


class UnsupportedManifest(ManifestError):
    pass


class NotFound(ImagetoolError):
    pass


class ManifestUnknown(NotFound):
    """The image itself is missing (no such tag, repository or layout name): exit code 2, as skopeo
    exits, so scripts tell "not there" from "broken"."""

    exit_code = 2


class BlobUnknown(NotFound):
    pass


class Unsupported(ImagetoolError):
    pass


class LayoutError(ImagetoolError):
    pass


class StoreLocked(ImagetoolError):
    temporary = True


class UnsafeContent(ImagetoolError):
    pass


class RegistryError(ImagetoolError):
    pass


class SignatureError(ImagetoolError):
    pass


class PolicyRejected(ImagetoolError):
    pass


class ContainerError(ImagetoolError):
    pass


class BuildError(ImagetoolError):
    pass


class UsageError(ImagetoolError):
    exit_code = 2


def describe(err: BaseException) -> str:
    """One line for an error and the chain of causes behind it, most general first."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).strip() or type(cur).__name__
        text = " ".join(text.split())
        if not parts or text not in parts[-1]:
            parts.append(text)
        cur = _behind(cur)
    return ": ".join(parts)


def _behind(err: BaseException) -> BaseException | None:
    """The error describe() goes on with. An implicit context (an error while handling another) always;
    an explicit cause when the error cites it (ImagetoolError.citing_cause) or another library raised
    the error (its message may lean on the cause). imagetool's own `raise X(...) from err` says all in
    X's message and keeps err for tracebacks."""
    cause = err.__cause__
    if cause is None:
        return None if err.__suppress_context__ else err.__context__
    if getattr(err, "cites_cause", False):
        return cause
    tb = err.__traceback__
    if tb is None:
        return cause
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return None if module.partition(".")[0] == "imagetool" else cause


class DockerfileError(BuildError):
    """A Dockerfile that does not parse or check; the message names the file and line."""

    def __init__(self, reason: str, line: int | None = None, file: str = "Dockerfile") -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.line = line
        self.file = file


class LayerError(ImagetoolError):
    """A layer tar that cannot be unpacked: truncated, corrupt, or an entry that cannot be applied."""


class ConfigError(ImagetoolError):
    """A configuration file (skopeo's sync YAML) that does not parse or has a value of the wrong type."""
