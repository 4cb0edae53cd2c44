"""The local function host: serves every function of the app the way the Functions host does.

Each HTTP-triggered function is routed from its own function.json (route template, methods, the
route prefix from host.json) and called with a real `azure.functions.HttpRequest`; non-HTTP
functions run on `POST /admin/functions/{name}` as under Core Tools, and timers on their schedule
when asked. It also serves the reference portal page, the OpenAPI document and, with a sandbox
tenant, a same-origin proxy to the sandbox's admin API (the page's stand-in for the admin center).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import requests
from azure.functions.timer import TimerRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from localdev.functions import APP_ROOT, FunctionSpec, discover, route_prefix, werkzeug_rules
from localdev.ncrontab import Schedule
from shared.support import failure

log = logging.getLogger("localdev.host")
PORTAL_DIR = Path(__file__).resolve().parent / "portal"
# The Functions host refuses bodies over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT itself (default 100 MB).
DEFAULT_BODY_LIMIT = 100 * 1024 * 1024
_HOP_HEADERS = {
    "connection",
    "transfer-encoding",
    "content-encoding",
    "content-length",
    "keep-alive",
}


@dataclass(frozen=True)
class HostRequest:
    """An HTTP request as the Functions host hands it to the worker (`ToRpcHttp`)."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    route_params: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HostAnswer:
    """A function's HTTP answer as the host writes it to the client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def host_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query as the Functions host hands it to the worker.

    ASP.NET Core's query collection matches names case-insensitively (the first spelling is
    kept) and joins a name's values with commas, skipping empty ones (`StringValues`); the host
    then keeps a name only when that value is not empty. So `?top=` reaches the app as no `top`,
    and `?top=5&TOP=6` as `top=5,6`.
    """
    spelled: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.upper()  # ordinal, ignoring case
        spelled.setdefault(key, name)
        values.setdefault(key, [])
        if value:
            values[key].append(value)
    return {spelled[k]: ",".join(v) for k, v in values.items() if v}


def resolve_setting_refs(value: str) -> str:
    """`%NAME%` in a binding is the app setting NAME, as the Functions host resolves it."""
    if value.startswith("%") and value.endswith("%") and len(value) > 2:
        return os.environ.get(value[1:-1], "")
    return value


class LocalHost:
    def __init__(
        self,
        root: Path = APP_ROOT,
        *,
        sandbox_url: str | None = None,
        sandbox_ca: str | None = None,
    ) -> None:
        self.root = root
        self.prefix = route_prefix(root)
        self.functions = {spec.name: spec for spec in discover(root)}
        self.sandbox_url = sandbox_url
        self.sandbox_ca = sandbox_ca
        self.body_limit = body_size_limit()  # read once, as the Functions host reads it
        self._handlers: dict[str, Callable[..., Any]] = {}
        rules = [
            Rule("/", endpoint=("portal", "index.html")),
            Rule("/portal/<path:path>", endpoint=("portal", None)),
            Rule(f"/{self.prefix}/openapi.yaml", endpoint=("openapi", None), methods=["GET"]),
            Rule("/admin/functions/<name>", endpoint=("admin", None), methods=["POST"]),
            Rule("/sandbox/admin/<path:path>", endpoint=("sandbox", None)),
            Rule("/sandbox/admin", endpoint=("sandbox", None)),
        ]
        for spec in self.functions.values():
            if spec.trigger != "httpTrigger" or spec.route is None:
                continue
            for rule in _with_empty_catch_all(werkzeug_rules(spec.route)):
                path = f"/{self.prefix}/{rule}".rstrip("/") if self.prefix else f"/{rule}"
                rules.append(
                    Rule(path, endpoint=("function", spec.name), methods=list(spec.methods) or None)
                )
        self.url_map = Map(rules, strict_slashes=False, merge_slashes=False)
        self._timer_stop = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- what the host serves ----------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, str]]:
        """(methods, path, function) for every HTTP function, as printed at start-up."""
        listed = []
        for rule in self.url_map.iter_rules():
            kind, name = rule.endpoint
            if kind == "function":
                methods = ",".join(sorted(self.functions[str(name)].methods or {"ALL"}))
                listed.append((methods, rule.rule, str(name)))
        return sorted(listed, key=lambda r: (r[1], r[0]))

    def handler(self, name: str) -> Callable[..., Any]:
        if name not in self._handlers:
            self._handlers[name] = self.functions[name].load()
        return self._handlers[name]

    # --- WSGI ----------------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        try:
            (kind, target), args = self.url_map.bind_to_environ(environ).match()
            if kind == "function":
                response = self._call_http_function(str(target), request, args)
            elif kind == "portal":
                response = self._static(target or args["path"])
            elif kind == "openapi":
                response = self._file(self.root / "openapi.yaml", "application/yaml")
            elif kind == "admin":
                response = self._admin_invoke(args["name"], request)
            else:
                response = self._sandbox_proxy(args.get("path", ""), request)
        except (NotFound, MethodNotAllowed):
            # The Functions host answers a route it does not serve for that method with a bare 404.
            response = Response(status=404)
        except HTTPException as exc:
            response = Response(status=exc.code or 500)
        return response(environ, start_response)

    def _call_http_function(self, name: str, request: Request, args: dict[str, Any]) -> Response:
        # werkzeug adds HEAD to every GET rule; the Functions host serves only the listed methods
        # (none listed: every method).
        listed = self.functions[name].methods
        if listed and request.method not in listed:
            return Response(status=404)
        body = self._read_body(request)
        if body is None:
            return Response(status=413)
        # The URL as the client sent it, still percent-encoded, as the Functions host passes it.
        raw_path = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
        url = request.host_url.rstrip("/") + raw_path if raw_path else request.url
        handed = HostRequest(
            method=request.method,
            url=url,
            headers=dict(request.headers),
            query=host_query(request.args.items(multi=True)),
            route_params={k: str(v) for k, v in args.items()},
            body=body,
        )
        answer = self.invoke_http(name, handed)
        return Response(answer.body, status=answer.status, headers=answer.headers)

    def invoke_http(self, name: str, request: HostRequest) -> HostAnswer:
        """Call the function with a real `azure.functions.HttpRequest` and read its response (the
        runtime suite replaces this with Microsoft's Python worker)."""
        http_request = func.HttpRequest(
            method=request.method,
            url=request.url,
            headers=request.headers,
            params=request.query,
            route_params=request.route_params,
            body=request.body,
        )
        result: func.HttpResponse = self.handler(name)(http_request)
        headers = [(k, v) for k, v in result.headers.items()]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", f"{result.mimetype}; charset={result.charset}"))
        return HostAnswer(result.status_code, headers, result.get_body())

    def _read_body(self, request: Request) -> bytes | None:
        """The body as the Functions host hands it over: only one that declares its length
        (`ToRpcHttp` reads the body only when Content-Length > 0, so a chunked body never reaches
        the function); None when it is longer than the host's limit."""
        declared = request.content_length
        if not declared:
            # Read and thrown away, so the connection stays usable; the function sees no body.
            while request.stream.read(64 * 1024):
                pass
            return b""
        if declared > self.body_limit:
            return None
        body: bytes = request.stream.read(declared)
        return body

    def _admin_invoke(self, name: str, request: Request) -> Response:
        spec = self.functions.get(name)
        if spec is None:
            return Response(status=404)
        if spec.trigger == "httpTrigger":
            return Response("use the function's HTTP route", status=400)
        threading.Thread(target=self.run_function, args=(spec,), daemon=True).start()
        return Response(status=202)  # Core Tools answers 202 and runs the function

    def run_function(self, spec: FunctionSpec, *, past_due: bool = False) -> None:
        started = time.perf_counter()
        try:
            argument: Any = None
            if spec.trigger == "timerTrigger":
                argument = TimerRequest(past_due=past_due)
            self.handler(spec.name)(argument)
            log.info(
                "function %s ran in %.0f ms", spec.name, (time.perf_counter() - started) * 1000
            )
        except Exception as exc:
            log.error("function %s failed: %s", spec.name, failure.describe(exc))

    def _static(self, relative: str) -> Response:
        path = (PORTAL_DIR / relative).resolve()
        if not path.is_relative_to(PORTAL_DIR) or not path.is_file():
            return Response(status=404)
        return self._file(path, mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    def _file(self, path: Path, content_type: str) -> Response:
        if not path.is_file():
            return Response(status=404)
        return Response(
            path.read_bytes(), content_type=content_type, headers={"Cache-Control": "no-cache"}
        )

    def _sandbox_proxy(self, path: str, request: Request) -> Response:
        if not self.sandbox_url:
            return Response(status=404)
        upstream = requests.request(
            request.method,
            f"{self.sandbox_url}/admin/{path}",
            params=request.args,
            data=request.get_data(),
            headers={
                k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")
            },
            verify=self.sandbox_ca or True,
            timeout=30,
        )
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS]
        return Response(upstream.content, status=upstream.status_code, headers=headers)

    # --- timers --------------------------------------------------------------------------------
    def start_timers(self) -> None:
        for spec in self.functions.values():
            if spec.trigger != "timerTrigger" or not spec.schedule:
                continue
            schedule = Schedule(resolve_setting_refs(spec.schedule))
            threading.Thread(target=self._timer_loop, args=(spec, schedule), daemon=True).start()
            if spec.run_on_startup:
                threading.Thread(target=self.run_function, args=(spec,), daemon=True).start()

    def _timer_loop(self, spec: FunctionSpec, schedule: Schedule) -> None:
        while not self._timer_stop.is_set():
            now = datetime.now(UTC)
            due = schedule.next_after(now)
            log.info("timer %s next run at %s", spec.name, due.isoformat())
            if self._timer_stop.wait((due - now).total_seconds()):
                return
            self.run_function(spec)

    # --- serving -------------------------------------------------------------------------------
    def bind(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Take the port without serving yet; returns the base URL. The app's own URL is then
        known before its settings are read (OIDC_ISSUER defaults to it: `issuer_url`)."""
        if self._server is None:
            self._server = make_server(host, port, self, threaded=True)
        return self.base_url

    def issuer_url(self) -> str:
        """The OpenID issuer as this host serves it: its base URL + the route prefix + `/oidc`."""
        return "/".join(p for p in (self.base_url, self.prefix, "oidc") if p)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread (on the port taken by `bind`, if any); returns the base
        URL."""
        self.bind(host, port)
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://{self._server.host}:{self._server.port}"

    def stop(self) -> None:
        self._timer_stop.set()
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for a serve loop that must have run
                self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def describe(self) -> str:
        lines = [f"Functions host listening on {self.base_url}", "", "HTTP functions:"]
        for methods, path, name in self.routes():
            shown = re.sub(r"<(?:path:)?(\w+)>", r"{\1}", path)  # as Core Tools prints routes
            lines.append(f"  {name:>15}: [{methods}] {self.base_url}{shown}")
        others = [s for s in self.functions.values() if s.trigger != "httpTrigger"]
        if others:
            lines.append("")
            lines.append("Other functions (run with POST /admin/functions/<name>):")
            for spec in others:
                schedule = f" schedule {spec.schedule}" if spec.schedule else ""
                lines.append(f"  {spec.name:>15}: {spec.trigger}{schedule}")
        return "\n".join(lines)


def _with_empty_catch_all(rules: list[str]) -> list[str]:
    """The rules plus, for one that ends in a catch-all, the rule without it: ASP.NET Core's
    catch-all parameter (`{*rest}`) also matches the empty string, so the Functions host hands
    `/api/files` to a function routed `files/{*rest}`, with no `rest`."""
    extra = [re.sub(r"/?<path:\w+>$", "", r) for r in rules if re.search(r"<path:\w+>$", r)]
    return rules + [r for r in extra if r not in rules]


def body_size_limit() -> int:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT as the Functions host reads it (bytes)."""
    value = os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_BODY_LIMIT


def load_local_settings(root: Path = APP_ROOT) -> dict[str, str]:
    """Values of local.settings.json (when present) into the environment, never overriding it."""
    path = root / "local.settings.json"
    values: dict[str, str] = {}
    if path.is_file():
        values = {k: str(v) for k, v in json.loads(path.read_text()).get("Values", {}).items()}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return values
