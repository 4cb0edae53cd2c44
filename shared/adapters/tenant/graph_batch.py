"""Several Graph GETs in one `POST {graph}/v1.0/$batch` (FACTS §9), with per-sub-request retries.

Graph answers a batch with one 200 whose sub-responses come in any order (matched here by `id`)
and succeed or fail each on its own; a throttled sub-request answers 429 with its own
`Retry-After` inside that 200, and SDKs do not retry it. So a sub-request answered 429 or 5xx is
retried alone: a new batch holds only the sub-requests to retry, sent after the longest
`Retry-After` among them (capped as every outbound wait is) or else a backoff, and never when
that wait would end at or past this thread's deadline: the last answer stands. The batch request
itself goes through the session's own bounded retries; when it still fails (network, 429, 5xx,
any non-200), every sub-request it held gets that failure, and nothing is retried here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.adapters.http.outbound import RETRY_AFTER_CAP, json_object, parse_retry_after
from shared.support.deadline import time_left
from shared.support.telemetry import (
    RETRIES,
    tracer,
    waited,
)
from shared.support.telemetry import throttled as count_throttled

MAX_REQUESTS = 20  # Graph's limit per batch
SUB_RETRIES = 3  # as many as the session's own retries
BACKOFF_SECONDS = 0.5  # doubled at each retry, when no Retry-After is given


@dataclass(frozen=True)
class SubResponse:
    """One sub-request's answer; `status` None when no HTTP answer exists for it (`note`)."""

    status: int | None
    body: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    note: str | None = None
    in_batch: bool = True  # False: the batch request itself failed, so this is its failure

    @property
    def retryable(self) -> bool:
        return (
            self.in_batch and self.status is not None and (self.status == 429 or self.status >= 500)
        )


def _retry_after(headers: Any) -> float | None:
    if not isinstance(headers, dict):
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    wait = parse_retry_after(str(value))
    return None if wait is None else min(wait, RETRY_AFTER_CAP)


def _post(
    session: requests.Session, graph: str, token: str, batch: Mapping[str, str]
) -> dict[str, SubResponse]:
    """One batch request: each id's sub-response, or the batch's own failure for every id."""
    body = {"requests": [{"id": i, "method": "GET", "url": url} for i, url in batch.items()]}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        response = session.post(f"{graph}/v1.0/$batch", json=body, headers=headers)
    except requests.RequestException as exc:
        failed = SubResponse(None, note=type(exc).__name__, in_batch=False)
        return dict.fromkeys(batch, failed)
    answer = json_object(response)
    items = answer.get("responses")
    if response.status_code != 200 or not isinstance(items, list):
        status = response.status_code if response.status_code != 200 else None
        note = None if status else "Graph's batch answer held no responses"
        return dict.fromkeys(batch, SubResponse(status, answer, note=note, in_batch=False))
    found: dict[str, SubResponse] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("id") not in batch or item["id"] in found:
            continue
        status = item.get("status")
        sub_body = item.get("body")
        found[item["id"]] = SubResponse(
            status if isinstance(status, int) else None,
            sub_body if isinstance(sub_body, dict) else {},
            _retry_after(item.get("headers")),
            None if isinstance(status, int) else "Graph's sub-response had no status",
        )
    missing = SubResponse(None, note="Graph's batch answer held no response for this request")
    return {i: found.get(i, missing) for i in batch}


def send(
    session: requests.Session,
    graph: str,
    token: str,
    urls: Mapping[str, str],
    *,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, SubResponse]:
    """GET every `urls` value (relative to `{graph}/v1.0`) in one batch; the answers by key."""
    if not 0 < len(urls) <= MAX_REQUESTS:
        raise ValueError(f"a batch holds 1 to {MAX_REQUESTS} requests")
    ids = {name: str(number) for number, name in enumerate(urls, 1)}
    answers: dict[str, SubResponse] = {}
    pending = list(urls)
    with tracer().start_as_current_span("graph batch", record_exception=False) as span:
        span.set_attribute("m365link.graph.requests", len(urls))
        for attempt in range(SUB_RETRIES + 1):
            got = _post(session, graph, token, {ids[name]: urls[name] for name in pending})
            for name in pending:
                answers[name] = got[ids[name]]
            retry = [name for name in pending if answers[name].retryable]
            _count_throttled(answers[name] for name in pending)
            if not retry or attempt == SUB_RETRIES:
                break
            backoff = BACKOFF_SECONDS * 2**attempt
            waits = [answers[n].retry_after for n in retry]
            wait = max(backoff if w is None else w for w in waits)
            left = time_left()
            if left is not None and wait >= left:
                break  # the wait would outlive the deadline: the throttled answers stand
            told = any(w is not None for w in waits)  # Graph asked for a wait (Retry-After)
            _note_retry(span, attempt + 1, retry, answers, wait, told=told)
            (sleep or time.sleep)(wait)
            pending = retry
        span.set_attribute(RETRIES, attempt)
    return answers


def _count_throttled(answers: Iterable[SubResponse]) -> None:
    """Each sub-request Graph answered 429 inside the batch's 200 (the batch's own 429s are
    the session's to count)."""
    throttled = sum(1 for a in answers if a.in_batch and a.status == 429)
    if throttled:
        count_throttled("graph", throttled)


def _note_retry(
    span: Any,
    number: int,
    retry: list[str],
    answers: Mapping[str, SubResponse],
    wait: float,
    *,
    told: bool,
) -> None:
    """A retry of sub-requests, as an event of the batch's span (how many, their statuses, the
    wait); a wait Graph asked for (Retry-After) is recorded as such."""
    if told:
        waited("graph", wait)
    if span.is_recording():
        statuses = sorted({answers[n].status or 0 for n in retry})
        span.add_event(
            "retry",
            {
                RETRIES: number,
                "m365link.graph.retried": len(retry),
                "http.response.status_code": statuses,
                "m365link.retry_after.waited_s" if told else "m365link.backoff_s": wait,
            },
        )
