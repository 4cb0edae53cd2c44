"""Traces of a customer's verification (API.md, "Telemetry"), read from the session's in-memory
SDK: the invocation span, its outbound child spans in order, a throttled Graph read's retry,
the log records on the same trace, and the metrics that moved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from shared.support import telemetry as names
from tests.conftest import RunningApp
from tests.e2e.customer import Customer, faulted
from tests.telemetry.collect import Telemetry, moved

VERIFY = "POST /api/accounts/{id}/verify"


@pytest.fixture
def customer(sandboxed_app: Callable[..., RunningApp], sandbox: Any) -> Customer:
    return Customer(sandboxed_app(), sandbox).link_all_the_way()


def _invocation(telemetry: Telemetry, name: str) -> ReadableSpan:
    [span] = [s for s in telemetry.spans() if s.name == name and s.kind == SpanKind.SERVER]
    return span


def _descendants(telemetry: Telemetry, root: ReadableSpan) -> list[ReadableSpan]:
    """Every span under `root`, in the order they started."""
    spans = telemetry.spans()
    found, parents = [], {root.context.span_id}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span.parent is not None and span.parent.span_id in parents:
            found.append(span)
            parents.add(span.context.span_id)
    return found


def _clients(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == SpanKind.CLIENT]


def test_a_verification_is_one_trace_with_its_outbound_calls_in_order(
    customer: Customer, telemetry: Telemetry
) -> None:
    telemetry.clear()
    before = telemetry.metrics()
    assert customer.verify()["status"] == "connected"
    invocation = _invocation(telemetry, VERIFY)
    attributes = dict(invocation.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/api/accounts/{id}/verify"
    assert attributes["http.response.status_code"] == 200
    assert attributes["m365link.duration_ms"] >= 0
    clients = _clients(_descendants(telemetry, invocation))
    templates = [dict(s.attributes or {})["url.template"] for s in clients]
    assert templates == [
        "/{tenant}/v2.0/.well-known/openid-configuration",
        "/{tenant}/oauth2/v2.0/token",
        "/v1.0/$batch",
    ]
    services = [dict(s.attributes or {})[names.SERVICE] for s in clients]
    assert services == ["entra", "entra", "graph"]
    for span in clients:
        attrs = dict(span.attributes or {})
        assert attrs["http.response.status_code"] == 200 and attrs[names.RETRIES] == 0
        assert attrs["server.address"] == "127.0.0.1"
        assert customer.tenant_id not in span.name and "?" not in span.name
        assert span.end_time and span.start_time and span.end_time >= span.start_time
    assert all(s.context.trace_id == invocation.context.trace_id for s in clients)
    # Nothing was throttled, so the outbound metrics did not move; the verification counted.
    after = telemetry.metrics()
    assert moved(before, after, names.THROTTLED) == {}
    counted = {((names.REPORT_STATUS, "connected"), (names.TRIGGER, "customer")): 1}
    assert moved(before, after, names.VERIFICATIONS) == counted
    assert attributes[names.REPORT_STATUS] == "connected"


def test_the_log_records_of_an_invocation_are_on_its_trace(
    customer: Customer, telemetry: Telemetry
) -> None:
    telemetry.clear()
    customer.verify()
    invocation = _invocation(telemetry, VERIFY)
    [request] = [
        r.log_record
        for r in telemetry.logs()
        if str(r.log_record.body).startswith("request function=verify_account")
    ]
    assert request.trace_id == invocation.context.trace_id
    assert request.span_id == invocation.context.span_id


def test_a_throttled_graph_sub_request_shows_its_retry(
    customer: Customer, sandbox: Any, telemetry: Telemetry
) -> None:
    customer.verify()
    telemetry.clear()
    before = telemetry.metrics()
    with faulted(sandbox, "graph", 429, path="/v1.0/organization", retry_after=1, count=1):
        assert customer.verify()["status"] == "connected"
    under = _descendants(telemetry, _invocation(telemetry, VERIFY))
    [batch] = [s for s in under if s.name == "graph batch"]
    assert dict(batch.attributes or {})[names.RETRIES] == 1
    [retry] = [e for e in batch.events if e.name == "retry"]
    event = dict(retry.attributes or {})
    assert event[names.RETRIES] == 1 and event["m365link.graph.retried"] == 1
    assert tuple(event["http.response.status_code"]) == (429,)
    assert event["m365link.retry_after.waited_s"] == 1.0
    posts = [s for s in _clients(under) if s.parent and s.parent.span_id == batch.context.span_id]
    assert len(posts) == 2  # the batch, then the throttled read alone
    after = telemetry.metrics()
    graph = ((names.SERVICE, "graph"),)
    assert moved(before, after, names.THROTTLED) == {graph: 1}
    assert moved(before, after, names.RETRY_AFTER_WAITED) == {graph: 1}


def test_a_throttled_batch_retried_by_the_session_shows_on_its_span(
    customer: Customer, sandbox: Any, telemetry: Telemetry
) -> None:
    customer.verify()
    telemetry.clear()
    before = telemetry.metrics()
    with faulted(sandbox, "graph", 429, path="/v1.0/$batch", retry_after=1, count=1):
        assert customer.verify()["status"] == "connected"
    under = _descendants(telemetry, _invocation(telemetry, VERIFY))
    batches = [s for s in _clients(under) if s.name.endswith("/v1.0/$batch")]
    [post] = batches
    attrs = dict(post.attributes or {})
    assert attrs[names.RETRIES] == 1 and attrs["http.response.status_code"] == 200
    assert [dict(e.attributes or {}) for e in post.events if e.name == "retry"] == [
        {names.RETRIES: 1, "http.response.status_code": 429}
    ]
    after = telemetry.metrics()
    graph = ((names.SERVICE, "graph"),)
    assert moved(before, after, names.THROTTLED) == {graph: 1}
    assert moved(before, after, names.RETRY_AFTER_WAITED) == {graph: 1}


def test_a_timer_run_is_one_span_of_its_own(customer: Customer, telemetry: Telemetry) -> None:
    telemetry.clear()
    host = customer.app.host
    host.run_function(host.functions["health_check"])
    run = _invocation(telemetry, "timer health_check")
    assert dict(run.attributes or {})["faas.trigger"] == "timer"
    assert run.parent is None
    # The account's calls, made on the run's worker threads, are part of the run's trace.
    clients = _clients(_descendants(telemetry, run))
    assert "/v1.0/$batch" in [dict(s.attributes or {})["url.template"] for s in clients]


@dataclass
class HostTraceContext:
    """What the Functions worker hands `main` as `context.trace_context`."""

    trace_parent: str
    trace_state: str = ""


@dataclass
class HostContext:
    trace_context: HostTraceContext


def test_an_invocation_joins_the_trace_the_host_passes(
    customer: Customer, telemetry: Telemetry
) -> None:
    import azure.functions as func

    import verify_account

    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    request = func.HttpRequest(
        method="POST",
        url=customer.app.api(f"/accounts/{customer.account['id']}/verify"),
        headers={},
        params={},
        route_params={"id": customer.account["id"]},
        body=b"",
    )
    telemetry.clear()
    context = HostContext(HostTraceContext(f"00-{trace_id}-{parent_id}-01"))
    response = verify_account.main(request, context)  # type: ignore[arg-type]
    assert response.status_code == 200
    invocation = _invocation(telemetry, VERIFY)
    assert invocation.context.trace_id == int(trace_id, 16)
    assert invocation.parent is not None and invocation.parent.span_id == int(parent_id, 16)
    assert all(s.context.trace_id == int(trace_id, 16) for s in _descendants(telemetry, invocation))
