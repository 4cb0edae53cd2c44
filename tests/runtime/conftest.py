"""Fixtures of the runtime suite: one worker per test session, the app behind it per test.

The suite runs under Python 3.13 with `azure-functions-runtime-v1` (`make test-runtime`): the
worker is initialised once and loads every function folder once, as one worker process does, and
each test gives the app fresh settings through the environment, which the app reads itself on
its next invocation, as in Azure.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from localdev.functions import APP_ROOT, discover
from shared.app.bootstrap import get_context, set_context
from tests.conftest import RunningApp, api_session
from tests.runtime.worker import Worker
from tests.runtime.worker_host import WorkerHost

INVOKED: list[Worker] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for instance in INVOKED:
        terminalreporter.write_line(
            f"runtime suite: {instance.invocations} invocations through "
            f"azure-functions-runtime-v1 {version('azure-functions-runtime-v1')} "
            f"(azure-functions {version('azure-functions')}), Python {sys.version.split()[0]}"
        )


@pytest.fixture(scope="session")
def worker() -> Iterator[Worker]:
    instance = Worker(APP_ROOT)
    INVOKED.append(instance)
    init = instance.start()
    assert init.result.status == instance.protos.StatusResult.Success, init.result.exception
    for spec in discover(APP_ROOT):
        loaded = instance.load(spec)
        assert loaded.result.status == instance.protos.StatusResult.Success, (
            spec.name,
            loaded.result.exception.message,
        )
    yield instance
    instance.stop()


@pytest.fixture
def start_worker_app(
    worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RunningApp]]:
    """The app behind the worker, with the given settings (defaults: local mode, local stores,
    every account due at every timer run)."""
    running: list[WorkerHost] = []

    def start(env: Mapping[str, str] | None = None, **host_options: Any) -> RunningApp:
        host = WorkerHost(worker, **host_options)
        host.bind()  # the port first: the issuer is the host's own URL, as under make run
        values = {
            "AUTH_MODE": "local",
            "LOCAL_STATE_DIR": str(tmp_path / f"state-{uuid.uuid4().hex[:8]}"),
            "HEALTH_CHECK_INTERVAL_HOURS": "0",
            "OIDC_ISSUER": host.issuer_url(),
        }
        values.update(env or {})
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        set_context(None)  # the app reads its settings anew, from the environment
        url = host.start()
        running.append(host)
        return RunningApp(url, get_context(), api_session(), host)

    yield start
    for host in running:
        host.stop()
    set_context(None)


@pytest.fixture
def sandboxed_worker_app(
    sandbox: Any, start_worker_app: Callable[..., RunningApp], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., RunningApp]:
    """The app behind the worker, pointed at a clean sandbox tenant (Entra + Graph)."""
    sandbox.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sandbox.ca_bundle_path)

    def start(env: Mapping[str, str] | None = None) -> RunningApp:
        values = {"ENTRA_AUTHORITY_HOST": sandbox.base_url, "GRAPH_ENDPOINT": sandbox.base_url}
        values.update(env or {})
        return start_worker_app(values)

    return start
