"""The HTTP edge: request bodies in, JSON and problem details out, one log line per request.

Every AppError becomes RFC 9457 problem details here and nowhere else. Anything unexpected becomes
a bare 500: no stack trace, key, token or assertion ever reaches a response.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import azure.functions as func

from shared.errors import (
    AppError,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

MAX_BODY_BYTES = 64 * 1024
PROBLEM_BASE = "https://m365-link.dev/problems/"
log = logging.getLogger("m365link.http")

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-store",
            **(headers or {}),
        },
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(error: AppError, instance: str | None = None) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + error.problem,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    body.update(error.extensions())
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status_code=error.status,
        headers={
            "Content-Type": "application/problem+json",
            "Cache-Control": "no-store",
            **error.headers(),
        },
        mimetype="application/problem+json",
        charset="utf-8",
    )


def read_json_object(req: func.HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, after the size and media-type limits."""
    declared = req.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
    media_type = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid UTF-8 JSON: {_reason(exc)}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "invalid UTF-8"


def endpoint(name: str) -> Callable[[Handler], Handler]:
    """Wrap a function's handler: map errors to problem details, log one line per request."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def main(req: func.HttpRequest) -> func.HttpResponse:
            started = time.perf_counter()
            path = _path(req.url)
            try:
                response = handler(req)
            except AppError as error:
                response = problem_response(error, instance=path)
                if error.status >= 500:
                    log.warning("function=%s dependency failure: %s", name, error.detail)
            except Exception:
                # The traceback goes to the log (source lines, never values); the caller gets a
                # bare 500 with nothing of the failure in it.
                log.exception("function=%s unhandled error", name)
                response = problem_response(
                    AppError("the request could not be completed"), instance=path
                )
            duration_ms = round((time.perf_counter() - started) * 1000)
            log.info(
                "request function=%s method=%s path=%s status=%d durationMs=%d",
                name,
                req.method,
                path,
                response.status_code,
                duration_ms,
                extra={
                    "function": name,
                    "method": req.method,
                    "path": path,
                    "status": response.status_code,
                    "durationMs": duration_ms,
                },
            )
            return response

        return main

    return wrap


def _path(url: str) -> str:
    """The request path as a valid URI reference, whatever encoding the host handed over."""
    return quote(unquote(urlsplit(url).path), safe="/") or "/"
