"""AUTH_MODE=local: one caller, `local-dev`, for `make run` and tests (refused in Azure)."""

from __future__ import annotations

from shared.adapters.identity.base import LOCAL_OWNER, Caller
from shared.core.model import Actor


class LocalAuthenticator:
    """AUTH_MODE=local: every caller is `local-dev` (refused in Azure by settings)."""

    def owner(self, authorization: str | None) -> str:
        return LOCAL_OWNER

    def caller(self, authorization: str | None) -> Caller:
        return Caller(LOCAL_OWNER, Actor("user", LOCAL_OWNER))
