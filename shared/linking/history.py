"""Events: who changed which account and how, and the routes that read them.

The actor of a change is the caller of the request that made it. HTTP handlers name the caller
with `acting_as`; anything without one (the health check timer and its worker threads) is the
timer. The store writes each event in the same transaction as its change (see the backends).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared.adapters.accountstore.base import FeedExpired, seq_position
from shared.context import AppContext
from shared.core.errors import CursorExpired, NotFound
from shared.core.model import TIMER, Account, Actor, Event
from shared.linking import paging
from shared.support.guid import parse_guid
from shared.support.timefmt import utc_now

_actor: ContextVar[Actor] = ContextVar("actor", default=TIMER)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get()


def event(owner: str, account_id: str, type_: str, **fields: Any) -> Event:
    """An event by the current actor, now; the store gives it its sequence number."""
    return Event(str(uuid.uuid4()), owner, account_id, type_, utc_now(), current_actor(), **fields)


def verified(current: Account, changed: Account, report_status: str) -> list[Event]:
    """The `verified` event of a recorded report (none or one): when the status changed, or
    when the account was not verified yet this UTC day (so a healthy account has about one a
    day)."""
    previous = current.last_verified_at
    new = changed.last_verified_at
    if (
        changed.status == current.status
        and previous is not None
        and new is not None
        and previous.date() == new.date()
    ):
        return []
    detail = "the verification could not finish" if report_status == "error" else None
    return [
        event(
            changed.owner,
            changed.id,
            "verified",
            status=changed.status,
            previous_status=current.status,
            detail=detail,
        )
    ]


def account_history(
    ctx: AppContext, owner: str, account_id: str, params: dict[str, str]
) -> dict[str, Any]:
    """One account's events, newest first. An unlinked account's history stays readable until
    retention removes it; an id with neither an account nor events is a 404."""
    top = paging.top(params)
    after = paging.decode(params.get("after"))
    canonical = parse_guid(account_id)
    if canonical is None:
        raise NotFound(f"no account {account_id!r}")
    page = paging.at_position(lambda: ctx.accounts.account_history(owner, canonical, top, after))
    if not page.items and after is None and ctx.accounts.get_account(owner, canonical) is None:
        raise NotFound(f"no account {account_id!r}")
    resources = [e.to_resource() for e in page.items]
    return paging.page_body(resources, f"/api/accounts/{canonical}/history", page.next, top=top)


def change_feed(ctx: AppContext, owner: str, params: dict[str, str]) -> dict[str, Any]:
    """The owner's events after the cursor (without one: from the oldest kept), oldest first,
    and the cursor to pass next; a cursor retention has passed is the 410 naming where to
    start again."""
    top = paging.top(params)
    raw = params.get("after")
    try:
        events, cursor = paging.at_position(
            lambda: ctx.accounts.events_after(
                owner, None if raw is None else seq_position(raw), top
            )
        )
    except FeedExpired as behind:
        raise CursorExpired(str(behind.oldest)) from None
    return {"value": [e.to_resource() for e in events], "cursor": str(cursor)}
