"""The app in a process of its own, exporting over OTLP/HTTP to a receiver on loopback that this
test starts (decoded with opentelemetry-proto); and the same app with no telemetry setting,
which installs no SDK and exports nothing (API.md, "Telemetry")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from shared.support import telemetry as names
from tests.conftest import ROOT, RunningApp, api_session
from tests.e2e.customer import Customer, faulted


class Receiver:
    """An OTLP/HTTP receiver: every body POSTed, by path (`/v1/traces`, `/v1/metrics`, ...)."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.setdefault(self.path, []).append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[tuple[str, Span]]:
        """Every span received, with its resource's service.name."""
        found = []
        for body in self.bodies.get("/v1/traces", []):
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    found += [(attrs.get("service.name", ""), span) for span in scope.spans]
        return found

    def metric_names(self) -> set[str]:
        found = set()
        for body in self.bodies.get("/v1/metrics", []):
            request = ExportMetricsServiceRequest.FromString(body)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    found.update(metric.name for metric in scope.metrics)
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver()
    yield instance
    instance.server.shutdown()


class AppProcess:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.telemetry.app_process"],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://"), "the app process did not start"

    def stop(self) -> dict[str, Any]:
        """Close its stdin; it stops and flushes; what telemetry it ran with."""
        out, _ = self.process.communicate("", timeout=60)
        assert self.process.returncode == 0
        ran: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return ran


def _app_env(sandbox: Any, tmp_path: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    env.update(
        {
            "AUTH_MODE": "local",
            "LOCAL_STATE_DIR": str(tmp_path / "state"),
            "ENTRA_AUTHORITY_HOST": sandbox.base_url,
            "GRAPH_ENDPOINT": sandbox.base_url,
            "REQUESTS_CA_BUNDLE": sandbox.ca_bundle_path,
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }
    )
    env.pop("M365LINK_TELEMETRY_CONSOLE", None)
    return env


def _verify_once(process: AppProcess, sandbox: Any) -> None:
    """One verification, whose Graph batch is throttled once (a retry and a metric to see)."""
    app = RunningApp(process.url, None, api_session(), None)  # type: ignore[arg-type]
    customer = Customer(app, sandbox).link_all_the_way()
    with faulted(sandbox, "graph", 429, path="/v1.0/$batch", retry_after=1, count=1):
        assert customer.verify()["status"] == "connected"


def test_one_verification_is_exported_as_traces_and_metrics_over_otlp_http(
    sandbox: Any, receiver: Receiver, tmp_path: Path
) -> None:
    sandbox.reset()
    env = _app_env(
        sandbox,
        tmp_path,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_METRIC_EXPORT_INTERVAL": "500"},
    )
    process = AppProcess(env)
    try:
        _verify_once(process, sandbox)
    finally:
        ran = process.stop()
    assert ran["mode"] == "otlp"
    spans = receiver.spans()
    assert {service for service, _ in spans} == {"m365-link"}
    [verify] = [s for _, s in spans if s.name == "POST /api/accounts/{id}/verify"]
    assert verify.kind == Span.SpanKind.SPAN_KIND_SERVER
    outbound = [
        s for _, s in spans if s.trace_id == verify.trace_id and s.kind == Span.SPAN_KIND_CLIENT
    ]
    templates = {
        a.value.string_value for s in outbound for a in s.attributes if a.key == "url.template"
    }
    assert templates >= {"/{tenant}/oauth2/v2.0/token", "/v1.0/$batch"}
    assert {
        names.THROTTLED,
        names.RETRY_AFTER_WAITED,
        names.VERIFICATIONS,
        names.VERIFICATION_DURATION,
        names.CHECKS,
    } <= receiver.metric_names()


def test_with_no_setting_no_sdk_is_installed_and_nothing_is_exported(
    sandbox: Any, receiver: Receiver, tmp_path: Path
) -> None:
    sandbox.reset()
    # Only the service's name: it configures nothing by itself.
    process = AppProcess(_app_env(sandbox, tmp_path, {"OTEL_SERVICE_NAME": "m365-link-off"}))
    try:
        _verify_once(process, sandbox)
    finally:
        ran = process.stop()
    assert ran == {"mode": "off", "sdkModules": []}
    assert receiver.bodies == {}
