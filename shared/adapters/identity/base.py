"""Who is calling, as every use case sees it: the Caller and the Authenticator interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.core.model import Actor

LOCAL_OWNER = "local-dev"


@dataclass(frozen=True)
class Caller:
    owner: str  # the portal customer the caller acts for
    actor: Actor  # the person, as the history records them: `oid`, else `sub`


class Authenticator(Protocol):
    def owner(self, authorization: str | None) -> str:
        """The owner the caller acts for; raises Unauthorized."""
        ...

    def caller(self, authorization: str | None) -> Caller:
        """The owner and the person acting; raises Unauthorized."""
        ...
