"""Run the real `imagetool` command (a subprocess, as a user would) and peer tools."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence


def imagetool(*args: str, check: bool = True, env: dict[str, str] | None = None, input: bytes | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "imagetool", *args], capture_output=True, text=True,
                          env=full_env, input=input.decode() if input else None, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"imagetool {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def tool(argv: Sequence[str], check: bool = True, timeout: float = 300, **kw: object) \
        -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tool(["skopeo", "--insecure-policy", *args], check=check)


RETRY_NOTICE = "Failed, retrying in "


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the process failed with exactly one line on stderr (besides notices of retries, as skopeo
    prints them) and no traceback; return the line."""
    assert proc.returncode != 0, proc
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(RETRY_NOTICE)]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]
