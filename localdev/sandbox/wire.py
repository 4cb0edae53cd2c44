"""JSON answers and the error shapes of the services the sandbox stands in for.

Why: Entra, Microsoft Graph and Key Vault each answer errors in their own JSON shape, and the app
branches on those shapes (`error_codes`, `error.code`). Handlers and injected faults both build
their errors here, so a fault looks exactly like the service it hits.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)


def json_response(
    body: Any,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json; charset=utf-8",
) -> Response:
    """A JSON response with the given status and extra headers."""
    return Response(json.dumps(body), status=status, headers=headers, content_type=content_type)


def utc_now() -> datetime:
    return datetime.now(UTC)


class EntraError(Exception):
    """An error the Entra endpoints answer with: OAuth `error`, AADSTS code and message."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message

    def response(self, request: Request, base_url: str) -> Response:
        return entra_error(request, base_url, self.status, self.error, self.code, self.message)


def entra_error(
    request: Request,
    base_url: str,
    status: int,
    error: str,
    code: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    """Entra's error JSON: `error`, `error_description` ("AADSTSnnnn: …"), `error_codes`, ids.

    Like Entra, the correlation id echoes the client's `client-request-id` header when it sent one.
    """
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    timestamp = utc_now().strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}"
        f"\r\nTimestamp: {timestamp}"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{base_url}/error?code={code}",
    }
    all_headers = {"x-ms-request-id": trace_id, "Cache-Control": "no-store, no-cache"}
    all_headers.update(headers or {})
    return json_response(body, status, headers=all_headers)


def graph_headers(request: Request) -> dict[str, str]:
    """The ids Graph puts on every answer; `client-request-id` echoes the caller's."""
    return {
        "request-id": str(uuid.uuid4()),
        "client-request-id": request.headers.get("client-request-id") or str(uuid.uuid4()),
    }


def graph_response(request: Request, body: Any, status: int = 200) -> Response:
    return json_response(
        body, status, headers=graph_headers(request), content_type=GRAPH_CONTENT_TYPE
    )


def graph_error(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    """Graph's error JSON: `{"error": {"code", "message", "innerError": {…}}}`."""
    ids = graph_headers(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": utc_now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": ids["request-id"],
                "client-request-id": ids["client-request-id"],
            },
        }
    }
    ids.update(headers or {})
    return json_response(body, status, headers=ids, content_type=GRAPH_CONTENT_TYPE)


def graph_method_not_allowed(request: Request) -> Response:
    return graph_error(
        request,
        405,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )


def keyvault_error(
    status: int,
    code: str,
    message: str,
    *,
    inner_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Key Vault's error JSON: `{"error": {"code", "message", "innererror"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner_code:
        error["innererror"] = {"code": inner_code}
    all_headers = {"x-ms-request-id": str(uuid.uuid4())}
    all_headers.update(headers or {})
    return json_response({"error": error}, status, headers=all_headers)


def error_code_of(response: Response) -> str | None:
    """The error code an answer carries, for the request record: `AADSTSnnnn` or `error.code`."""
    if response.status_code < 400 or not (response.mimetype or "").endswith("json"):
        return None
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes:
        return f"AADSTS{codes[0]}"
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return code if isinstance(code, str) else None
    return error if isinstance(error, str) else None
