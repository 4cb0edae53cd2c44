"""The timer's tidying after the accounts: finish unlinks, drop keys never linked, remove orphans.

Runs after every `health_check` run; each step is safe to repeat, so a run that stops midway is
finished by the next one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.accounts import finish_key_deletion
from shared.app_context import AppContext
from shared.errors import AppError

if TYPE_CHECKING:
    from shared.health_check import RunSummary

log = logging.getLogger("m365link.housekeeping")
UNLINKED_KEY_MAX_AGE = timedelta(days=7)
ORPHAN_SECRET_MIN_AGE = timedelta(hours=1)  # younger ones may belong to a request in flight


def run(ctx: AppContext, summary: RunSummary, now: datetime) -> None:
    """Finish unlinks whose key deletion failed, drop keys never linked within 7 days, and
    remove private keys that no record points at (a create that failed halfway)."""
    try:
        records = list(ctx.accounts.list_keys())
        for key in records:
            if key.deleting:
                summary.deletions_finished += finish_key_deletion(ctx, key.owner, key.key_id)
            elif key.account_id is None and now - key.created_at > UNLINKED_KEY_MAX_AGE:
                summary.keys_removed += finish_key_deletion(ctx, key.owner, key.key_id)
        known = {k.key_id for k in records}
        for stored in ctx.keys.list():
            too_young = stored.created_at is None or now - stored.created_at < ORPHAN_SECRET_MIN_AGE
            if stored.key_id not in known and not too_young:
                ctx.keys.delete(stored.key_id)
                summary.orphans_removed += 1
    except AppError as error:
        log.warning("housekeeping stopped early: %s", error.detail)
