"""What a tenant answers, as data: OpenID metadata, a token request, a Graph read.

The tenant client turns every HTTP answer (or the lack of one) into these values and never raises
for what Entra or Graph said, so the decision table (`shared.verification.checks`) can judge each
one as a check. Pure: no HTTP library is imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetadataAnswer:
    document: dict[str, Any] | None = None
    status: int | None = None
    error_code: int | None = None  # AADSTS number
    description: str | None = None  # first line of Entra's error_description
    transient: bool = False


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str | None = field(default=None, repr=False)
    claims: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_code: int | None = None
    description: str | None = None
    transient: bool = False
    status: int | None = None
    unexpected: bool = False  # an answer (or a failure inside MSAL) no rule here knows


@dataclass(frozen=True)
class GraphAnswer:
    status: int | None
    body: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def first_line(text: object) -> str | None:
    """Entra's descriptions carry trace and correlation ids on later lines; keep the message.
    Anything but text (a server's number or object) is no message."""
    if not isinstance(text, str) or not text.strip():
        return None
    return text.strip().splitlines()[0].strip()[:500]


_AADSTS = re.compile(r"(?:AADSTS)?([1-9][0-9]{0,8})", re.ASCII)


def aadsts_number(codes: object) -> int | None:
    """The AADSTS number of an Entra error body's `error_codes` (a list of integers; its first
    is the one that counts), for metadata and token errors alike. Whatever else a server put
    there (text, null, an empty list, a boolean, a number beyond any code) is no code, never a
    crash; "90002" and "AADSTS90002" are read as 90002."""
    if not isinstance(codes, list) or not codes:
        return None
    first = codes[0]
    if isinstance(first, str):
        match = _AADSTS.fullmatch(first.strip())
        return int(match.group(1)) if match else None
    if isinstance(first, int) and not isinstance(first, bool) and 0 < first < 10**9:
        return first
    return None


def graph_answer(status: int, body: dict[str, Any]) -> GraphAnswer:
    """A Graph response as data: the body on success, Graph's error `code` and `message` else."""
    if 200 <= status < 300:
        return GraphAnswer(status=status, body=body)
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    code = error.get("code")
    return GraphAnswer(
        status=status,
        code=code if isinstance(code, str) else None,
        message=first_line(error.get("message")),
        transient=status == 429 or status >= 500,
    )
