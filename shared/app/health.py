"""The app's own health: are its two stores reachable? Names backends, never a secret. Once the
app has an issuer key, the body also says so (`"issuer": {"status": "ok", "keys": N}`).

`GET /api/health` is anonymous, so its answer is cached: a loop of calls costs each store one
point read per `OK_TTL` seconds (a failure is cached for less, so recovery shows soon), and
concurrent callers share one probe.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from shared.context import AppContext
from shared.core.errors import AppError, DependencyUnavailable
from shared.support.deadline import deadline

OK_TTL = 5.0
FAILED_TTL = 2.0
# One probe's longest wait, retries included: callers queue behind the probe in flight, so it is
# bounded like any other unit of work (the stores' own timeouts and retries would allow ~40 s).
PROBE_SECONDS = 5.0
log = logging.getLogger("m365link.health")


class Unhealthy(DependencyUnavailable):
    """503 problem details that still carry what each store said."""

    def __init__(self, checks: dict[str, Any]) -> None:
        down = [name for name, check in checks.items() if check["status"] != "ok"]
        super().__init__(
            ", ".join(down), f"unreachable: {', '.join(down)}", retry_after=round(FAILED_TTL)
        )
        self.checks = checks

    def extensions(self) -> dict[str, object]:
        return dict(self.checks)


class _Cache:
    """The last probe of one context, until it expires."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.context: weakref.ref[AppContext] | None = None
        self.until = 0.0
        self.checks: dict[str, Any] = {}

    def fresh(self, ctx: AppContext, now: float) -> dict[str, Any] | None:
        owner = self.context() if self.context is not None else None
        return self.checks if owner is ctx and now < self.until else None


_cache = _Cache()


def probe(ctx: AppContext) -> dict[str, Any]:
    """The health body when both stores answer; raises Unhealthy otherwise."""
    checks = _cached_checks(ctx)
    if any(check["status"] != "ok" for check in checks.values()):
        raise Unhealthy(checks)
    return {"status": "ok", **checks}


def _cached_checks(ctx: AppContext) -> dict[str, Any]:
    checks = _cache.fresh(ctx, time.monotonic())
    if checks is not None:
        return checks
    with _cache.lock:  # concurrent callers wait for the one probe in flight
        checks = _cache.fresh(ctx, time.monotonic())
        if checks is None:
            with deadline(PROBE_SECONDS):
                checks = {name: _probe_one(store) for name, store in _stores(ctx)}
                issuer = _issuer(ctx) if checks["accountStore"]["status"] == "ok" else None
                if issuer is not None:
                    checks["issuer"] = issuer
            healthy = all(check["status"] == "ok" for check in checks.values())
            _cache.context = weakref.ref(ctx)
            _cache.checks = checks
            _cache.until = time.monotonic() + (OK_TTL if healthy else FAILED_TTL)
        return checks


def _stores(ctx: AppContext) -> tuple[tuple[str, Any], ...]:
    return (("keyStore", ctx.keys), ("accountStore", ctx.accounts))


def _issuer(ctx: AppContext) -> dict[str, Any] | None:
    """The issuer's part (what the ring knows of its published keys: no read at all until this
    process has seen one), or None before its first key; a failure leaves it out, as the
    account store's own probe tells what is down."""
    try:
        return ctx.issuer().health()
    except Exception as error:
        log.warning("health probe of the issuer failed: %s", type(error).__name__)
        return None


def _probe_one(store: Any) -> dict[str, Any]:
    started = time.perf_counter()
    check: dict[str, Any] = {"backend": store.backend, "status": "ok"}
    try:
        store.ping()
    except AppError as error:
        # The stores word these themselves: what is down, never a setting's value.
        check.update(status="unavailable", detail=error.detail)
    except Exception as error:  # a probe must answer, whatever the store raised
        log.warning("health probe of %s failed: %s", store.backend, type(error).__name__)
        check.update(status="unavailable", detail=f"the {store.backend} store did not answer")
    check["durationMs"] = round((time.perf_counter() - started) * 1000)
    return check
