"""The outbound session: every wait (Retry-After, backoff, each attempt's timeouts) is bounded by
the deadline of its unit of work, and a Retry-After is capped when there is no deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from shared.adapters.http.outbound import make_session
from shared.support.deadline import deadline
from tests.unit.scripted_server import Answer, ScriptedServer, scripted_server

MARGIN = 0.35  # scheduling and loopback round trips on a busy two-core machine


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from scripted_server()


def timed_get(session: requests.Session, url: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = session.get(url)
    return response, time.monotonic() - started


def test_a_retry_after_longer_than_the_deadline_is_answered_at_once(
    server: ScriptedServer,
) -> None:
    # The case: 429 + Retry-After: 4 under a 1 s deadline took 8 s.
    server.answer(Answer(429, {"Retry-After": "4"}))
    with deadline(1.0):
        response, elapsed = timed_get(make_session(), f"{server.url}/token")
    assert response.status_code == 429  # the last answer, as data for the caller to judge
    assert elapsed < 1.0 + MARGIN
    assert len(server.received) == 1  # no retry could have finished in time


def test_a_retry_after_that_fits_the_deadline_is_honoured(server: ScriptedServer) -> None:
    server.answer(Answer(503, {"Retry-After": "1"}), Answer(200))
    with deadline(5.0):
        response, elapsed = timed_get(make_session(), f"{server.url}/graph")
    assert response.status_code == 200
    first, second = server.received[0][2], server.received[1][2]
    assert second - first >= 0.95 and elapsed < 5.0


def test_without_a_deadline_a_retry_after_is_capped(server: ScriptedServer) -> None:
    server.answer(Answer(429, {"Retry-After": "3600"}), Answer(200))
    response, elapsed = timed_get(make_session(max_retry_after=0.5), f"{server.url}/graph")
    assert response.status_code == 200 and len(server.received) == 2
    assert elapsed < 0.5 + MARGIN


def test_a_retry_after_date_past_the_deadline_is_answered_at_once(server: ScriptedServer) -> None:
    server.answer(Answer(503, {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"}))
    with deadline(2.0):
        response, elapsed = timed_get(make_session(), f"{server.url}/graph")
    assert response.status_code == 503 and elapsed < MARGIN and len(server.received) == 1


def test_a_retry_after_that_is_not_a_number_nor_a_date_backs_off(server: ScriptedServer) -> None:
    server.answer(Answer(503, {"Retry-After": "soon"}), Answer(200))
    with deadline(5.0):
        response, _ = timed_get(make_session(), f"{server.url}/graph")
    assert response.status_code == 200 and len(server.received) == 2


def test_a_slow_server_is_given_up_on_at_the_deadline_retries_included(
    server: ScriptedServer,
) -> None:
    # Each attempt used to get the whole of what was left when the call began.
    server.answer(Answer(200, delay=3.0))
    started = time.monotonic()
    with deadline(1.0), pytest.raises(requests.RequestException):
        make_session().get(f"{server.url}/graph")
    assert time.monotonic() - started < 1.0 + MARGIN


def test_retries_after_a_backoff_get_only_what_is_left(server: ScriptedServer) -> None:
    # 500, 500, then a slow answer: the third attempt starts after 1 s of backoff, with 0.5 s left.
    server.answer(Answer(500), Answer(500), Answer(200, delay=3.0))
    started = time.monotonic()
    with deadline(1.5), pytest.raises(requests.RequestException):
        make_session(backoff=0.5).get(f"{server.url}/graph")
    assert time.monotonic() - started < 1.5 + MARGIN
    assert len(server.received) == 3


def test_an_inner_deadline_never_extends_the_outer_one(server: ScriptedServer) -> None:
    server.answer(Answer(200, delay=3.0))
    started = time.monotonic()
    with deadline(0.5), deadline(30), pytest.raises(requests.RequestException):
        make_session().get(f"{server.url}/graph")
    assert time.monotonic() - started < 0.5 + MARGIN


def test_a_call_after_the_deadline_fails_without_reaching_the_server(
    server: ScriptedServer,
) -> None:
    with deadline(0.05):
        time.sleep(0.1)
        with pytest.raises(requests.Timeout):
            make_session().get(f"{server.url}/graph")
    assert server.received == []


def test_a_timeout_given_as_one_number_is_accepted(server: ScriptedServer) -> None:
    response = make_session().get(f"{server.url}/graph", timeout=2)
    assert response.status_code == 200
