"""One reader of Retry-After for the session, Graph's batch and the Azure SDK transport: a
number of seconds or an HTTP date; anything else (or a non-finite number) reads as no wait asked,
never as an exception or a sleep of NaN seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.adapters.http.azure_pipeline import requested_wait
from shared.adapters.http.outbound import RETRY_AFTER_CAP, parse_retry_after
from shared.adapters.tenant.graph_batch import _retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("4", 4.0), (" 7 ", 7.0), ("1.5", 1.5), ("-3", 0.0), ("0", 0.0)],
)
def test_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    wait = parse_retry_after(later)
    assert wait is not None and 80 <= wait <= 91


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "-inf", "", "1e999"])
def test_anything_else_is_no_wait(value: str) -> None:
    assert parse_retry_after(value) is None
    assert requested_wait({"retry-after": value} if value else {}) in (None, -1)
    assert _retry_after({"Retry-After": value}) is None


def test_graph_caps_a_long_wait() -> None:
    assert _retry_after({"retry-after": "3600"}) == RETRY_AFTER_CAP
