"""Fixtures shared by every test: the local host, Azurite, telemetry, and the record of
everything seen.

Every response the tests receive from the app, every log line emitted during the run and every
span, span event, log record and metric the app exported (one in-memory OpenTelemetry SDK for
the whole session, `telemetry`) are kept, so `zz_final/test_no_secrets.py` can look through all
of them at the end.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from localdev.azurite import Azurite
from localdev.azurite import start_azurite as _start_azurite
from localdev.host import LocalHost
from shared.app.bootstrap import build_context, set_context
from shared.context import AppContext
from shared.core.settings import load_settings
from tests.telemetry.collect import TELEMETRY, Telemetry

ROOT = Path(__file__).resolve().parent.parent


# --- the record of everything the app said ---------------------------------------------------
@dataclass
class Seen:
    responses: list[tuple[str, int, dict[str, str], bytes]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)  # tokens and keys the tests handled


SEEN = Seen()


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            SEEN.log_lines.append(self.format(record))
        except Exception:  # a log line that cannot format is still a log line
            SEEN.log_lines.append(str(record.msg))


def pytest_configure(config: pytest.Config) -> None:
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # Third-party debug output is noise here, but it is still collected and looked through.
    for noisy in ("urllib3", "azure", "msal", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    TELEMETRY.install()


@pytest.fixture(scope="session")
def telemetry() -> Telemetry:
    """The session's in-memory OpenTelemetry SDK (installed once, at start-up, for the whole
    run): `spans()`, `logs()`, `metrics()` (cumulative points) and `clear()`."""
    return TELEMETRY


def _remember(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    SEEN.responses.append(
        (response.url, response.status_code, dict(response.headers), response.content)
    )


# A compact JWS (a token, a client assertion, an addKey/removeKey proof) anywhere in a text.
_JWS = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _remember_tokens(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Every token and signed JWT the app sent or received on its outbound session (client
    assertions in form bodies, Graph proofs of possession in JSON bodies, bearer tokens, the
    tokens Entra answered), for zz_final/test_no_secrets."""
    body = response.request.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    SEEN.secrets.update(_JWS.findall(unquote(text)))
    auth = response.request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        SEEN.secrets.add(auth[7:])
    if "/oauth2/v2.0/token" in response.url and response.ok:
        try:
            token = response.json().get("access_token")
        except ValueError:
            token = None
        if isinstance(token, str):
            SEEN.secrets.add(token)


def api_session() -> requests.Session:
    session = requests.Session()
    session.hooks["response"].append(_remember)
    return session


# --- the local host with the app --------------------------------------------------------------
@dataclass
class RunningApp:
    url: str
    context: AppContext
    http: requests.Session
    host: LocalHost

    def api(self, path: str) -> str:
        return f"{self.url}/api{path}"


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """Start the local host with the app built from the given settings (defaults: local mode).
    The host's port is taken first: OIDC_ISSUER is then the host's own URL + `/api/oidc` unless
    a test sets it, as under `make run`, since the sandbox tenant fetches the issuer's documents
    from the app over loopback HTTP."""
    running: list[RunningApp] = []

    def start(env: Mapping[str, str] | None = None, **context_options: Any) -> RunningApp:
        host = LocalHost()
        host.bind()
        # Every account due at every timer run, unless a test sets the interval: most tests of
        # the timer are about what a verification does, not about when it is due.
        values = {
            "AUTH_MODE": "local",
            "LOCAL_STATE_DIR": str(tmp_path / "state"),
            "HEALTH_CHECK_INTERVAL_HOURS": "0",
            "OIDC_ISSUER": host.issuer_url(),
        }
        values.update(env or {})
        try:
            context = build_context(load_settings(values), **context_options)
        except BaseException:
            host.stop()
            raise
        context.http.hooks["response"].append(_remember_tokens)
        set_context(context)
        url = host.start()
        app = RunningApp(url, context, api_session(), host)
        running.append(app)
        return app

    yield start
    for app in running:
        app.host.stop()
    set_context(None)


# --- Azurite -----------------------------------------------------------------------------------
def start_azurite() -> Azurite:
    try:
        return _start_azurite()
    except RuntimeError as failure:
        pytest.fail(str(failure))


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl command line is needed (Debian package openssl)")
    return path


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback traffic must never go through a proxy the machine may have configured.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("AZURE_CORE_COLLECT_TELEMETRY", "false")


# --- the sandbox tenant ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    from localdev.sandbox import Sandbox

    with Sandbox() as instance:
        yield instance


@pytest.fixture
def sandboxed_app(
    sandbox: Any, start_app: Callable[..., RunningApp], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., RunningApp]:
    """Start the app pointed at a clean sandbox tenant (Entra + Graph), local stores."""
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)

    def start(env: Mapping[str, str] | None = None, **options: Any) -> RunningApp:
        values = {"ENTRA_AUTHORITY_HOST": sandbox.base_url, "GRAPH_ENDPOINT": sandbox.base_url}
        values.update(env or {})
        return start_app(values, **options)

    return start
