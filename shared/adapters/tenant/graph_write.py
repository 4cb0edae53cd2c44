"""What Graph answered to one of the app's own writes, as data: done, refused or transient,
with Graph's code and words (cleaned: one line, bounded, nothing shaped like a JWT) and one
sentence for a rotation's `detail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.core.answers import GraphAnswer, first_line

_MESSAGE_MAX = 300
# Graph's words end up in a rotation's `detail`: nothing shaped like a JWT is kept.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class GraphWrite:
    """What Graph answered to one of the app's own writes."""

    outcome: str  # "done" | "refused" | "transient"
    status: int | None = None
    code: str | None = None  # Graph's error code, e.g. "CredentialInvalidLifetimeAsPerAppPolicy"
    message: str | None = None  # Graph's error message, first line only (never a token/proof)
    key_credential_id: str | None = None  # addKey: the keyCredential keyId Graph gave the new cert
    operation: str = "addKey"  # what was asked, named in `words()`

    def words(self, *, again: bool = True) -> str:
        """One sentence for a rotation's `detail` (`again` False: a transient failure is not
        tried again)."""
        said = f": {self.message}" if self.message else ""
        op = self.operation
        if self.outcome == "done":
            key = f" (keyId {self.key_credential_id})" if self.key_credential_id else ""
            return _sentence(f"Microsoft Graph accepted {op}{key}{said}")
        answer = "no answer" if self.status is None else f"HTTP {self.status}"
        if self.code:
            answer += f" {self.code}"
        if self.outcome == "transient":
            return _sentence(
                f"Microsoft Graph could not be reached for {op} ({answer})"
                + (", to be tried again" if again else "")
                + said
            )
        if self.status is None:  # judged here, before or instead of Graph's answer
            return _sentence(f"{op} could not be done{said}")
        if 200 <= self.status < 300:
            return _sentence(f"Microsoft Graph's answer to {op} could not be used ({answer}){said}")
        return _sentence(f"Microsoft Graph refused {op} ({answer}){said}")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def judged(answer: GraphAnswer, operation: str) -> GraphWrite:
    """A Graph answer that is not a success: transient (429/5xx, no answer) or refused."""
    outcome = "transient" if answer.transient else "refused"
    code = answer.code if isinstance(answer.code, str) else None
    return GraphWrite(
        outcome, answer.status, _clean(code), _clean(answer.message), operation=operation
    )


def _clean(text: str | None) -> str | None:
    """Graph's words: one line, bounded, anything shaped like a JWT taken out."""
    line = first_line(text) if isinstance(text, str) else None
    if not line:
        return None
    return _JWT_LIKE.sub("[removed]", line)[:_MESSAGE_MAX]
