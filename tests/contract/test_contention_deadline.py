"""A write that waits its turn on a busy owner never outlasts its unit of work's deadline
(API.md: "Every wait is bounded by the deadline of its unit of work")."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from shared.adapters.accountstore.base import VersionConflict
from shared.adapters.accountstore.table.layout import partition_of
from shared.adapters.accountstore.table.store import TableAccountStore
from shared.app.http_edge import problem_response
from shared.support.deadline import deadline
from tests.conftest import Azurite


@pytest.fixture
def table_store(azurite: Azurite) -> TableAccountStore:
    from shared.adapters.accountstore.table.store import build_service
    from shared.core.settings import TableSettings

    table = "t" + uuid.uuid4().hex[:20]
    return TableAccountStore(
        build_service(TableSettings(table, connection_string=azurite.connection_string)), table
    )


def test_a_write_waiting_for_a_busy_owner_gives_up_at_the_deadline(
    table_store: TableAccountStore,
) -> None:
    owner = "busy-owner"
    # Another writer of this process holds the owner's turn (a long transaction, say).
    pk = partition_of(owner)
    turn = table_store._turns.of(pk)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with turn:
            held.set()
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    try:
        with deadline(0.5), pytest.raises(VersionConflict) as refused:
            table_store.unlink(owner, str(uuid.uuid4()))
    finally:
        release.set()
        holder.join()
    assert time.monotonic() - started < 1.5  # not the 15 s a write may wait without a deadline
    answered = problem_response(refused.value)  # what the caller gets at the HTTP edge
    assert answered.status_code == 503 and answered.headers["Retry-After"]
    # Once the turn is free, the same call goes through (no such account: None).
    with deadline(5):
        assert table_store.unlink(owner, str(uuid.uuid4())) is None
