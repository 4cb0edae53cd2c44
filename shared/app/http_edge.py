"""The HTTP edge: request bodies in, JSON and problem details out, one log line per request.

Every AppError becomes RFC 9457 problem details here and nowhere else. Anything unexpected becomes
a bare 500: no stack trace, key, token or assertion ever reaches a response or the log.
"""

from __future__ import annotations

import codecs
import json
import logging
import time
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import azure.functions as func
from opentelemetry import trace

from shared.adapters.accountstore.base import VersionConflict
from shared.adapters.http import spans
from shared.app import telemetry
from shared.core.errors import (
    AccountBusy,
    AppError,
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from shared.support import failure, strict_json

MAX_BODY_BYTES = 64 * 1024
# A portal on another origin reads these (CORS shows a script only "simple" headers otherwise):
# the account's version for If-Match, where a created resource is, when to try again.
EXPOSED = {"Access-Control-Expose-Headers": "ETag, Location, Retry-After"}
PROBLEM_BASE = "https://m365-link.dev/problems/"
log = logging.getLogger("m365link.http")
APP_ROOT = Path(__file__).resolve().parents[2]  # the function folders

Handler = Callable[[func.HttpRequest], func.HttpResponse]
# The methods a request's route serves (a v1 route with `{x?}` is two resources in one function).
Methods = Callable[[func.HttpRequest], tuple[str, ...]]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-store",
            **EXPOSED,
            **(headers or {}),
        },
        mimetype="application/json",
        charset="utf-8",
    )


def problem_of(error: AppError | VersionConflict) -> AppError:
    """The problem an error answers: the app's own errors as they are; facts of the stores that
    reach the edge, in their HTTP terms (a write that lost every race: the account is busy)."""
    return AccountBusy() if isinstance(error, VersionConflict) else error


def problem_response(
    error: AppError | VersionConflict, instance: str | None = None
) -> func.HttpResponse:
    error = problem_of(error)
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
            **EXPOSED,
            **error.headers(),
        },
        mimetype="application/problem+json",
        charset="utf-8",
    )


def read_json_object(
    req: func.HttpRequest, media_types: tuple[str, ...] = ("application/json",)
) -> dict[str, Any]:
    """The request body as a JSON object, after the size and media-type limits."""
    declared = req.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
    raw = req.get_body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes")
    _check_media_type(req.headers.get("Content-Type"), media_types)
    try:
        body = strict_json.loads(raw)
    except strict_json.JsonRefused as refused:
        raise BadRequest(str(refused)) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _check_media_type(header: str | None, media_types: tuple[str, ...]) -> None:
    """Type and subtype match case-insensitively (RFC 9110); a charset must be UTF-8."""
    expected = " or ".join(media_types)
    if not header:
        raise UnsupportedMediaType(f"send the body as {expected}")
    parsed = Message()
    parsed["Content-Type"] = header
    if parsed.get_content_type() not in media_types:
        raise UnsupportedMediaType(f"send the body as {expected}")
    charset = parsed.get_param("charset")
    if charset is not None and _codec(charset) != "utf-8":
        raise UnsupportedMediaType("send the body as UTF-8 (charset=utf-8, or no charset)")


def _codec(charset: object) -> str | None:
    if not isinstance(charset, str):  # an RFC 2231 tuple: never UTF-8 as this API reads it
        return None
    try:
        return codecs.lookup(charset.strip()).name
    except LookupError:
        return None


class LengthRequired(AppError):
    """A body sent without Content-Length (chunked): the Functions host never hands it over."""

    status = 411
    problem = "length-required"
    title = "Content-Length required"


def _as_sent(req: func.HttpRequest) -> func.HttpRequest:
    """The request with an empty query value read as an absent one (API.md input rules), as the
    Functions host already drops it; refused with a 411 when its body was sent chunked, since
    the host hands the worker no such body and the app would act on a request it never saw whole
    (`ToRpcHttp` reads a body only when Content-Length is over 0)."""
    if "transfer-encoding" in req.headers:
        raise LengthRequired("send the body with a Content-Length header, not chunked")
    if all(req.params.values()):
        return req
    return func.HttpRequest(
        method=req.method,
        url=req.url,
        headers=dict(req.headers),
        params={k: v for k, v in req.params.items() if v},
        route_params=dict(req.route_params),
        body=req.get_body(),
    )


def _method_not_allowed(req: func.HttpRequest, allowed: tuple[str, ...]) -> func.HttpResponse:
    if req.method.upper() == "OPTIONS":
        return func.HttpResponse(status_code=204, headers={"Allow": ", ".join(allowed)})
    raise MethodNotAllowed(
        f"{req.method.upper()} is not served here; use {', '.join(allowed)}", allow=allowed
    )


def endpoint(name: str, methods: Methods | tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Wrap a function's handler: answer methods the route does not serve with 405 + Allow, map
    errors to problem details, log one line per request.

    Each function.json lists every method (the Functions host answers a bare 404 for one it does
    not list), so the handler only ever sees the methods `methods` names: a tuple, or a function
    of the request where one function serves routes with different methods.

    Applied when the host imports the function, it checks the settings then too: an app that
    refuses its settings says so in its start-up log, not at the first request.
    """
    from shared.app.bootstrap import check_settings_at_import

    check_settings_at_import()
    allowed_of: Methods = methods if callable(methods) else (lambda req: methods)

    route = _route_template(name)

    def wrap(handler: Handler) -> Handler:
        # The host passes `context` (its trace context among it) since `main` names it, typed
        # exactly `func.Context` as the worker requires; the local host passes none.
        def main(
            req: func.HttpRequest,
            context: func.Context = None,  # type: ignore[assignment]
        ) -> func.HttpResponse:
            method = req.method.upper()
            with telemetry.invocation(f"{method} {route}", name, "http", context) as span:
                response = _answer(req, handler, allowed_of, name)
                if span.is_recording():
                    span.set_attributes(
                        {
                            spans.HTTP_METHOD: method,
                            spans.HTTP_ROUTE: route,
                            spans.HTTP_STATUS: response.status_code,
                        }
                    )
                return response

        # Named as the handler, but not wrapping it (no `__wrapped__`): the worker reads
        # `main`'s own signature, `context` included.
        main.__name__, main.__qualname__ = handler.__name__, handler.__qualname__
        main.__module__, main.__doc__ = handler.__module__, handler.__doc__
        return main

    return wrap


def _answer(
    req: func.HttpRequest, handler: Handler, allowed_of: Methods, name: str
) -> func.HttpResponse:
    """The handler's response, or the problem it raised; one log line per request."""
    started = time.perf_counter()
    path = _path(req.url)
    try:
        allowed = allowed_of(req)
        if req.method.upper() in allowed:
            response = handler(_as_sent(req))
        else:
            response = _method_not_allowed(req, allowed)
    except (AppError, VersionConflict) as raised:
        error = problem_of(raised)
        response = problem_response(error, instance=path)
        if error.status >= 500:
            log.warning("function=%s dependency failure: %s", name, error.detail)
    except Exception as exc:
        # The log gets the exception's type and place, never a traceback or its message
        # (either can hold values); the caller gets a bare 500 with nothing of it.
        log.error("function=%s unhandled error: %s", name, failure.describe(exc))
        response = problem_response(AppError("the request could not be completed"), instance=path)
    duration_ms = round((time.perf_counter() - started) * 1000)
    trace.get_current_span().set_attribute(spans.DURATION_MS, duration_ms)
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


def _route_template(name: str) -> str:
    """The route of function `name` as its function.json declares it (`/api/accounts/{id}/
    verify`): the span's name and `http.route`, never the path as sent."""
    try:
        bindings = json.loads((APP_ROOT / name / "function.json").read_text())["bindings"]
        route = next(b["route"] for b in bindings if b.get("type") == "httpTrigger")
    except (OSError, ValueError, KeyError, StopIteration):
        return f"/api/{name}"
    return "/api/" + str(route).strip("/")


def _path(url: str) -> str:
    """The request path as a valid URI reference, whatever encoding the host handed over."""
    return quote(unquote(urlsplit(url).path), safe="/") or "/"
