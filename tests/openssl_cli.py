"""The `openssl` command line, as a customer's or an auditor's tool sees our certificates."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def x509(openssl: str, path: Path, inform: str, *flags: str) -> str:
    """`openssl x509 -inform <inform> -in <path> -noout <flags>`: its standard output."""
    return subprocess.run(
        [openssl, "x509", "-inform", inform, "-in", str(path), "-noout", *flags],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def fingerprint(openssl: str, path: Path, inform: str, digest: str = "-sha1") -> str:
    """The certificate's fingerprint as upper-case hex without colons."""
    line = x509(openssl, path, inform, "-fingerprint", digest)
    return re.sub(r"[^0-9A-F]", "", line.split("=", 1)[1])
