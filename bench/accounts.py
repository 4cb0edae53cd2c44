"""Linking and listing accounts through the local host, on both account store backends.

Issue 3. One owner's partition is filled with N accounts: N keys by POST /api/keys (setup, timed
apart), then N links by POST /api/accounts from a few concurrent clients (measured: links per
second, p50/p99 latency), then GET /api/accounts?top=100 (the first page of the N) repeated R
times (p50/p99).
Backends: embedded SQLite, and Table Storage on an Azurite started (in memory) and stopped here.
The key store is the embedded one (files) in both cases. Real HTTP on 127.0.0.1, AUTH_MODE=local.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench._support import (
    RunningApp,
    app_settings,
    arguments,
    azurite,
    cpu_seconds,
    local_host,
    loopback_only,
    median,
    ms,
    note,
    percentile,
    print_table,
    quiet_logging,
)

ACCOUNTS, QUICK_ACCOUNTS = 1000, 60
LISTS, QUICK_LISTS = 50, 5
KEY_CLIENTS = 2  # key generation is CPU-bound: one client per core
LINK_CLIENTS = 4

PAGE = 100  # the list is paged (issue 14): one page, as the portal reads it


@dataclass
class Cpu:
    """CPU seconds of the app's process and of the storage process (Azurite) during a phase."""

    app: float = 0.0
    storage: float = float("nan")


@dataclass
class BackendResult:
    backend: str
    keys_seconds: float
    link_seconds: float
    link_latencies: list[float]
    list_latencies: list[float]
    list_bytes: int
    link_cpu: Cpu
    list_cpu: Cpu


def _sessions() -> Callable[[], requests.Session]:
    """One session per client thread; trust_env off, so no proxy is ever asked."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.trust_env = False
        return local.session  # type: ignore[no-any-return]

    return session


def _fan_out(
    clients: int, items: Sequence[Any], call: Callable[[requests.Session, Any], Any]
) -> list[Any]:
    session = _sessions()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(lambda item: call(session(), item), items))


def create_keys(app: RunningApp, count: int) -> list[dict[str, Any]]:
    """POST /api/keys `count` times (2048-bit), each for its own tenant + application."""

    def create(session: requests.Session, _: int) -> dict[str, Any]:
        body = {
            "tenantId": str(uuid.uuid4()),
            "applicationId": str(uuid.uuid4()),
            "displayName": "Bench key",
        }
        response = session.post(app.api("/keys"), json=body, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/keys answered {response.status_code}: {response.text}")
        key: dict[str, Any] = response.json()
        return key

    return _fan_out(KEY_CLIENTS, range(count), create)


def link_accounts(app: RunningApp, keys: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """POST /api/accounts once per key from LINK_CLIENTS clients: wall seconds, latencies."""

    def link(session: requests.Session, key: dict[str, Any]) -> float:
        body = {
            "displayName": "Bench account",
            "tenantId": key["tenantId"],
            "applicationId": key["applicationId"],
            "organizationName": "contoso.onmicrosoft.com",
            "keyId": key["keyId"],
        }
        started = time.perf_counter()
        response = session.post(app.api("/accounts"), json=body, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/accounts answered {response.status_code}")
        return elapsed

    started = time.perf_counter()
    latencies = _fan_out(LINK_CLIENTS, keys, link)
    return time.perf_counter() - started, latencies


def list_accounts(app: RunningApp, expected: int, repeats: int) -> tuple[list[float], int]:
    """GET /api/accounts?top=100 (one page) `repeats` times, one client: latencies and the
    body size."""
    session = requests.Session()
    session.trust_env = False
    latencies = []
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = session.get(app.api("/accounts"), params={"top": PAGE}, timeout=60)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or len(response.json()["value"]) != min(expected, PAGE):
            raise RuntimeError(f"GET /api/accounts answered {response.status_code}")
        size = len(response.content)
    return latencies, size


@contextmanager
def backend_settings(backend: str, state_dir: Path) -> Iterator[tuple[dict[str, str], int | None]]:
    """The app's settings for a backend, and the pid of the storage process (if any)."""
    if backend == "sqlite":
        yield app_settings(state_dir), None
        return
    with azurite() as service:
        settings = app_settings(
            state_dir,
            {
                "ACCOUNTS_STORAGE": service.connection_string,
                "ACCOUNTS_TABLE_NAME": "benchaccounts",
            },
        )
        yield settings, service.process.pid


class CpuMeter:
    """CPU used by this process and the storage process between `start()` and `stop()`."""

    def __init__(self, storage_pid: int | None) -> None:
        self._pid = storage_pid

    def start(self) -> None:
        self._app = cpu_seconds()
        self._storage = cpu_seconds(self._pid) if self._pid else 0.0

    def stop(self) -> Cpu:
        app = cpu_seconds() - self._app
        storage = cpu_seconds(self._pid) - self._storage if self._pid else float("nan")
        return Cpu(app, storage)


def run_backend(backend: str, accounts: int, lists: int) -> BackendResult:
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-accounts-{backend}-") as folder,
        backend_settings(backend, Path(folder) / "state") as (settings, storage_pid),
        local_host(settings) as app,
    ):
        meter = CpuMeter(storage_pid)
        started = time.perf_counter()
        keys = create_keys(app, accounts)
        keys_seconds = time.perf_counter() - started
        meter.start()
        link_seconds, link_latencies = link_accounts(app, keys)
        link_cpu = meter.stop()
        meter.start()
        list_latencies, list_bytes = list_accounts(app, accounts, lists)
        list_cpu = meter.stop()
        return BackendResult(
            backend,
            keys_seconds,
            link_seconds,
            link_latencies,
            list_latencies,
            list_bytes,
            link_cpu,
            list_cpu,
        )


def report(results: list[BackendResult], accounts: int, lists: int) -> None:
    print_table(
        f"Setup: {accounts} keys by POST /api/keys (2048-bit, {KEY_CLIENTS} clients; not measured "
        "below)",
        ["backend", "seconds", "keys/s"],
        [[r.backend, r.keys_seconds, accounts / r.keys_seconds] for r in results],
    )
    print_table(
        f"POST /api/accounts: {accounts} links into one owner, {LINK_CLIENTS} concurrent clients",
        [
            "backend",
            "links/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "wall s",
            "app CPU ms/link",
            "Azurite CPU ms/link",
        ],
        [
            [
                r.backend,
                accounts / r.link_seconds,
                ms(median(r.link_latencies)),
                ms(percentile(r.link_latencies, 99)),
                ms(max(r.link_latencies)),
                r.link_seconds,
                ms(r.link_cpu.app / accounts),
                ms(r.link_cpu.storage / accounts),
            ]
            for r in results
        ],
    )
    print_table(
        f"GET /api/accounts?top={PAGE}: first page of {accounts}, {lists} times, one client",
        [
            "backend",
            "p50 ms",
            "p99 ms",
            "min ms",
            "body KiB",
            "app CPU ms/list",
            "Azurite CPU ms/list",
        ],
        [
            [
                r.backend,
                ms(median(r.list_latencies)),
                ms(percentile(r.list_latencies, 99)),
                ms(min(r.list_latencies)),
                r.list_bytes / 1024,
                ms(r.list_cpu.app / lists),
                ms(r.list_cpu.storage / lists),
            ]
            for r in results
        ],
    )
    note(
        "the app, the local host and the clients share one process (and the GIL); Azurite is a "
        "separate Node process; the key store is files under a temporary folder"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    accounts = QUICK_ACCOUNTS if args.quick else ACCOUNTS
    lists = QUICK_LISTS if args.quick else LISTS
    started = time.monotonic()
    results = [run_backend(backend, accounts, lists) for backend in ("sqlite", "table")]
    report(results, accounts, lists)
    print(json.dumps({"benchmark": "accounts", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
