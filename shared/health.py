"""The app's own health: are its two stores reachable? Names backends, never a secret."""

from __future__ import annotations

import time
from typing import Any

from shared.app_context import AppContext
from shared.errors import AppError, DependencyUnavailable


class Unhealthy(DependencyUnavailable):
    """503 problem details that still carry what each store said."""

    def __init__(self, checks: dict[str, Any]) -> None:
        down = [name for name, check in checks.items() if check["status"] != "ok"]
        super().__init__(", ".join(down), f"unreachable: {', '.join(down)}", retry_after=30)
        self.checks = checks

    def extensions(self) -> dict[str, object]:
        return dict(self.checks)


def probe(ctx: AppContext) -> dict[str, Any]:
    """The health body when both stores answer; raises Unhealthy otherwise."""
    checks: dict[str, Any] = {}
    for name, store in (("keyStore", ctx.keys), ("accountStore", ctx.accounts)):
        started = time.perf_counter()
        try:
            store.ping()
            checks[name] = {"backend": store.backend, "status": "ok"}
        except AppError as error:
            checks[name] = {
                "backend": store.backend,
                "status": "unavailable",
                "detail": error.detail,
            }
        checks[name]["durationMs"] = round((time.perf_counter() - started) * 1000)
    if any(check["status"] != "ok" for check in checks.values()):
        raise Unhealthy(checks)
    return {"status": "ok", **checks}
