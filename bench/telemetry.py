"""A warm verification's own overhead with telemetry off and on (in-memory), side by side.

Issue 22. One linked, connected account in the sandbox tenant at zero latency; warm
POST /api/accounts/{id}/verify runs, first with no SDK installed (no OTEL_* variable: every
telemetry call is the OpenTelemetry API's no-op), then, in the same process and on the same
warm app, with the SDK installed through `shared.app.telemetry.install` exporting every span,
log record and metric to memory (simple span and log processors, so each item's export cost is
paid inside the request). Figures: the app's own work (wall minus the outbound session's round
trips, as bench.verify measures it) and wall time, p50/p99/mean per phase, and what one
verification exports.

The providers can be set once per process, so "off" always runs first; each phase starts with
a few settling runs.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from bench._support import (
    app_settings,
    arguments,
    loopback_only,
    median,
    ms,
    note,
    percentile,
    print_table,
    quiet_logging,
    sandbox_process,
)
from bench._support import local_host as serve
from bench.verify import OutboundTimer, Sample, link_connected_account, verify_once

RUNS, QUICK_RUNS = 200, 20
SETTLE = 5


class InMemory:
    """The SDK with in-memory exporters, as the test session installs it."""

    def __init__(self) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import (
            InMemoryLogRecordExporter,
            SimpleLogRecordProcessor,
        )
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from shared.app import telemetry

        self.spans, self.logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
        self.reader = InMemoryMetricReader()
        tracing = TracerProvider()
        tracing.add_span_processor(SimpleSpanProcessor(self.spans))
        logging_ = LoggerProvider()
        logging_.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        telemetry.install(tracing, MeterProvider(metric_readers=[self.reader]), logging_)

    def clear(self) -> None:
        self.spans.clear()
        self.logs.clear()


def phase(run_once: Any, runs: int) -> list[Sample]:
    for _ in range(SETTLE):
        run_once()
    return [run_once() for _ in range(runs)]


def run(runs: int) -> tuple[list[Sample], list[Sample], dict[str, float]]:
    with (
        sandbox_process() as sb,
        tempfile.TemporaryDirectory(prefix="bench-telemetry-") as folder,
    ):
        loopback_only(sb.ca_bundle_path)
        settings = app_settings(Path(folder) / "state", sb.app_settings())
        with serve(settings) as app:
            account_id = link_connected_account(app, sb)
            http = requests.Session()
            http.trust_env = False
            timer = OutboundTimer(app.context.http)

            def once() -> Sample:
                return verify_once(http, app, account_id, sb, timer)

            off = phase(once, runs)
            sdk = InMemory()
            on = phase(once, runs)
            sdk.clear()
            once()
            exported = {
                "spans": len(sdk.spans.get_finished_spans()),
                "log records": len(sdk.logs.get_finished_logs()),
            }
    return off, on, exported


def report(off: list[Sample], on: list[Sample], exported: dict[str, float]) -> None:
    def row(name: str, values: list[float]) -> list[Any]:
        return [name, ms(median(values)), ms(percentile(values, 99)), ms(sum(values) / len(values))]

    def own(samples: list[Sample]) -> list[float]:
        return [s.wall - s.outbound for s in samples]

    print_table(
        f"Warm POST /api/accounts/{{id}}/verify, {len(off)} runs per phase (ms)",
        ["figure", "p50", "p99", "mean"],
        [
            row("app's own work, telemetry off", own(off)),
            row("app's own work, telemetry on (in-memory)", own(on)),
            row("wall time, telemetry off", [s.wall for s in off]),
            row("wall time, telemetry on (in-memory)", [s.wall for s in on]),
        ],
    )
    added = median(own(on)) - median(own(off))
    print_table(
        "Telemetry's cost per warm verification",
        ["added own work p50 (ms)", "spans exported", "log records exported"],
        [[ms(added), exported["spans"], exported["log records"]]],
    )
    note(
        "off: no SDK installed (the API's no-ops); on: the SDK with simple (synchronous) "
        "processors into memory, so the export cost is inside each request; a batch processor "
        "(OTLP, Azure Monitor) moves it to a background thread"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    started = time.monotonic()
    off, on, exported = run(QUICK_RUNS if args.quick else RUNS)
    report(off, on, exported)
    print(json.dumps({"benchmark": "telemetry", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
