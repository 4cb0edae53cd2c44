"""Graph JSON batching: `POST /v1.0/$batch` with up to 20 sub-requests answered in one 200.

Why: the app puts all Graph reads of one verification in one batch (FACTS §9) and must cope with
what Graph does there: sub-responses in any order (matched by `id`), each sub-request throttled
or failing on its own (a 429 with its own `Retry-After` inside a 200 batch), and the whole batch
refused (400) when it is malformed. Each sub-request runs through the same handler as the
standalone request, with the outer bearer token, and meets the injected faults by its own path.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from localdev.sandbox.state import Fault, SandboxState
from localdev.sandbox.traffic import graph_fault_response
from localdev.sandbox.wire import (
    error_code_of,
    graph_error,
    graph_method_not_allowed,
    graph_response,
)

MAX_REQUESTS = 20
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Headers a sub-response carries, as Graph's do (its ids are on the outer response).
_SUB_HEADERS = ("Content-Type", "Retry-After", "Location")

Dispatch = Callable[[Request, str], Response]


@dataclass(frozen=True)
class _SubRequest:
    id: str
    method: str
    path: str  # after /v1.0/, decoded
    query: str
    headers: dict[str, str]
    body: bytes | None
    depends_on: tuple[str, ...]


class BatchError(Exception):
    """The batch as a whole is refused (400)."""


def _parse(request: Request) -> list[_SubRequest]:
    try:
        payload = json.loads(request.get_data() or b"null")
    except ValueError as error:
        raise BatchError("Invalid JSON batch payload.") from error
    items = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise BatchError("The batch payload must have a non-empty 'requests' array.")
    if len(items) > MAX_REQUESTS:
        raise BatchError(
            f"The batch holds {len(items)} requests; at most {MAX_REQUESTS} are allowed."
        )
    parsed: list[_SubRequest] = []
    for item in items:
        parsed.append(_sub_request(item, {p.id for p in parsed}))
    return parsed


def _sub_request(item: Any, seen: set[str]) -> _SubRequest:
    if not isinstance(item, dict):
        raise BatchError("Each batch request must be a JSON object.")
    request_id, method, url = item.get("id"), item.get("method"), item.get("url")
    if not isinstance(request_id, str) or not request_id:
        raise BatchError("Each batch request needs a non-empty string 'id'.")
    if request_id in seen:
        raise BatchError(f"The batch has more than one request with id '{request_id}'.")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise BatchError(f"Request '{request_id}' has no valid 'method'.")
    if not isinstance(url, str) or not url or "://" in url:
        raise BatchError(f"Request '{request_id}' needs a 'url' relative to the Graph version.")
    headers = item.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BatchError(f"The 'headers' of request '{request_id}' must map names to strings.")
    body: bytes | None = None
    if item.get("body") is not None:
        if not any(name.lower() == "content-type" for name in headers):
            raise BatchError(f"Request '{request_id}' has a body but no Content-Type header.")
        body = json.dumps(item["body"]).encode()
    depends_on = item.get("dependsOn") or []
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise BatchError(f"The 'dependsOn' of request '{request_id}' must be a list of ids.")
    # Sub-requests run in the order given, so a dependency must come before its dependent.
    unknown = [d for d in depends_on if d not in seen]
    if unknown:
        raise BatchError(
            f"Request '{request_id}' depends on request ids {unknown} not given before it."
        )
    split = urlsplit(url if url.startswith("/") else f"/{url}")
    return _SubRequest(
        id=request_id,
        method=method.upper(),
        path=unquote(split.path).lstrip("/"),
        query=split.query,
        headers={str(k): v for k, v in headers.items()},
        body=body,
        depends_on=tuple(depends_on),
    )


def _as_item(request_id: str, response: Response) -> dict[str, Any]:
    """One entry of `responses`: `id`, `status`, `headers`, and `body` when there is one."""
    headers = {name: response.headers[name] for name in _SUB_HEADERS if name in response.headers}
    item: dict[str, Any] = {"id": request_id, "status": response.status_code, "headers": headers}
    data = response.get_data()
    if data:
        try:
            item["body"] = json.loads(data)
        except ValueError:
            item["body"] = data.decode("utf-8", "replace")
    return item


class GraphBatch:
    """Answers `/v1.0/$batch` by running each sub-request through `dispatch`."""

    def __init__(
        self,
        state: SandboxState,
        dispatch: Dispatch,
        authenticate: Callable[[Request], Response | None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._state = state
        self._dispatch = dispatch
        self._authenticate = authenticate
        self._sleep = sleep

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return graph_method_not_allowed(request)
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        try:
            subs = _parse(request)
        except BatchError as error:
            return graph_error(request, 400, "BadRequest", str(error))
        statuses: dict[str, int] = {}
        answers: list[dict[str, Any]] = []
        record: list[dict[str, Any]] = []
        for sub in subs:  # in request order, so a dependency is answered before its dependents
            fault: Fault | None = None
            if any(statuses[d] >= 400 for d in sub.depends_on):
                response = graph_error(
                    request, 424, "FailedDependency", "A request it depends on failed."
                )
            else:
                response, fault = self._answer(request, sub)
            statuses[sub.id] = response.status_code
            answers.append(_as_item(sub.id, response))
            record.append(
                {
                    "id": sub.id,
                    "method": sub.method,
                    "path": f"/v1.0/{sub.path}",
                    "query": sub.query,
                    "status": response.status_code,
                    "error": error_code_of(response),
                    "fault": fault is not None and fault.status is not None,
                }
            )
        self._state.note_batch(record)
        return graph_response(request, {"responses": self._ordered(answers)})

    def _answer(self, outer: Request, sub: _SubRequest) -> tuple[Response, Fault | None]:
        path = f"/v1.0/{sub.path}"
        fault = self._state.take_fault("graph", path)
        if fault is not None and fault.latency_ms > 0:
            self._sleep(fault.latency_ms / 1000)
        if fault is not None and fault.status is not None:
            return graph_fault_response(outer, fault), fault
        if sub.path.lower() == "$batch":
            return graph_error(outer, 400, "BadRequest", "A batch cannot hold a batch."), fault
        headers = dict(sub.headers)
        headers["Authorization"] = outer.headers.get("Authorization", "")
        builder = EnvironBuilder(
            method=sub.method,
            path=path,
            query_string=sub.query,
            headers=list(headers.items()),
            data=sub.body,
            base_url=outer.host_url,
        )
        try:
            return self._dispatch(builder.get_request(), sub.path), fault
        finally:
            builder.close()

    def _ordered(self, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._state.lock:
            order = self._state.batch_order
        if order == "reverse":
            return answers[::-1]
        if order == "shuffle":
            return random.sample(answers, len(answers))
        return answers
