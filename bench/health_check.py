"""The health_check timer over a fleet: 2,000 accounts in 50 tenants, 50 ms per sandbox request.

Issue 5. Each tenant holds 40 app registrations, each consented (AccessReview.Read.All), given
Global Reader, with its own key's certificate uploaded; each app is one linked account. The
accounts are linked through the stores' interfaces (`keys.store_key`, `link`: what POST
/api/keys and POST /api/accounts do, without the HTTP edge), embedded stores (files + SQLite),
with RSA keys generated ahead of time in a process pool and handed to the key store. Then the
sandbox adds 50 ms to every request and `health_check.run(ctx, concurrency=16)`
runs twice: cold (a fresh app context: no warm MSAL application, no metadata cache) and warm (the
same context again). The timer is due-based (issue 14): the app runs with
HEALTH_CHECK_INTERVAL_HOURS=0 (`bench._support.app_settings`) and each run is given
`bench._support.settled_now()` as its clock, so every account is due again at the warm run (as
it would be one interval later) and none twice in one run; bench.fleet measures the due-based
timer on a fleet where most accounts are not due.

Figures: wall time; the lower bound = requests counted at the sandbox during the run x 50 ms /
16, and wall / lower bound (goal <= 1.2, issue 12); requests per account on the warm run (goal
1: one Graph `$batch` per account, issue 12; it was 2 before); peak memory (resident set growth
during the run; tracemalloc peak in a third, traced run with --tracemalloc, whose wall time is
slowed by tracing and only shown for reference).
App and sandbox CPU seconds during each run show where the two cores went.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench._support import (
    PeakRss,
    SandboxProcess,
    app_settings,
    arguments,
    build_app_context,
    cpu_seconds,
    loopback_only,
    note,
    print_table,
    quiet_logging,
    sandbox_process,
    settled_now,
)
from shared.core import certificates
from shared.core.model import Account
from shared.linking.keys import store_key
from shared.timer import run as health_check

TENANTS, APPS_PER_TENANT = 50, 40
QUICK_TENANTS, QUICK_APPS_PER_TENANT = 5, 20
LATENCY_MS = 50
CONCURRENCY = 16
ADMIN_CLIENTS = 8
RATIO_GOAL, REQUESTS_GOAL = 1.2, 1.0


@dataclass(frozen=True)
class Registration:
    tenant_id: str
    app_id: str
    owner: str


@dataclass
class RunFigures:
    name: str
    wall: float
    counts: dict[str, int]
    checked: int
    connected: int
    failures: int
    rss_growth_kb: int
    warm_apps: int
    app_cpu: float
    sandbox_cpu: float
    traced_peak_kb: int | None = None

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def lower_bound(self) -> float:
        """Every request the sandbox counted (a `$batch` is one, whatever it holds) takes at least
        the injected latency, and at most CONCURRENCY accounts have one in flight."""
        return self.requests * LATENCY_MS / 1000 / CONCURRENCY


def _generate(index: int) -> bytes:
    return certificates.generate(
        f"Bench {index}", validity_days=365, key_size=2048, now=datetime.now(UTC)
    ).private_key_pem


def generate_keys(count: int) -> list[bytes]:
    """RSA-2048 private keys (PEM), one process per core (spawned: no inherited threads)."""
    workers = max(multiprocessing.cpu_count(), 1)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_generate, range(count), chunksize=25))


def key_generator(pems: list[bytes]) -> Callable[[int], rsa.RSAPrivateKey]:
    """What the local key store calls for a new key: the next key made ahead of time."""
    keys = iter(pems)
    lock = threading.Lock()

    def generate(size: int) -> rsa.RSAPrivateKey:
        with lock:
            pem = next(keys)
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == size
        return key

    return generate


def _per_thread_admin(sb: SandboxProcess) -> Callable[[], Any]:
    from localdev.sandbox import SandboxAdmin

    local = threading.local()

    def admin() -> Any:
        if not hasattr(local, "admin"):
            local.admin = SandboxAdmin(sb.base_url, sb.ca_bundle_path)
        return local.admin

    return admin


def register_fleet(sb: SandboxProcess, tenants: int, apps_per_tenant: int) -> list[Registration]:
    """Tenants and app registrations in the sandbox, as each customer's admin would set them up."""
    admin = _per_thread_admin(sb)

    def tenant(t: int) -> str:
        domain = f"fleet{t}-{uuid.uuid4().hex[:6]}.onmicrosoft.com"
        return str(admin().create_tenant(f"Fleet {t}", domains=[domain])["tenantId"])

    def application(index: int) -> Registration:
        tenant_id = tenant_ids[index // apps_per_tenant]
        app_id = str(admin().create_application(tenant_id, f"Portal reader {index}")["appId"])
        admin().set_permissions(tenant_id, app_id, ["AccessReview.Read.All"])
        admin().set_directory_roles(tenant_id, app_id, ["Global Reader"])
        owner = f"owner-{index // apps_per_tenant}"
        return Registration(tenant_id, app_id, owner)

    with ThreadPoolExecutor(max_workers=ADMIN_CLIENTS) as pool:
        tenant_ids = list(pool.map(tenant, range(tenants)))
        return list(pool.map(application, range(tenants * apps_per_tenant)))


def upload_certificates(
    sb: SandboxProcess, registrations: list[Registration], certificates_pem: list[str]
) -> None:
    """Each customer uploads its key's certificate to its app registration."""
    admin = _per_thread_admin(sb)

    def upload(pair: tuple[Registration, str]) -> None:
        registration, pem = pair
        admin().upload_certificate(registration.tenant_id, registration.app_id, pem)

    with ThreadPoolExecutor(max_workers=ADMIN_CLIENTS) as pool:
        list(pool.map(upload, zip(registrations, certificates_pem, strict=True)))


def link_fleet(ctx: Any, registrations: list[Registration]) -> list[str]:
    """What POST /api/keys and POST /api/accounts store, through the stores' interfaces; the
    certificates to upload."""
    made: list[str] = []
    for number, r in enumerate(registrations):
        now = datetime.now(UTC)
        key = store_key(ctx, r.owner, r.tenant_id, r.app_id, f"Bench {number}", now=now)
        made.append(key.certificate_pem)
        key_id = key.key_id
        ctx.accounts.link(
            Account(
                id=str(uuid.uuid4()),
                owner=r.owner,
                display_name=f"Bench {number}",
                tenant_id=r.tenant_id,
                application_id=r.app_id,
                organization_name=None,
                cloud="auto",
                key_id=key_id,
                thumbprint=key.thumbprint,
                certificate_not_after=key.not_after,
                status="pending",
                created_at=now,
                updated_at=now,
            )
        )
    return made


def run_once(name: str, ctx: Any, sb: SandboxProcess, *, traced: bool = False) -> RunFigures:
    clock = settled_now()  # every account due, none twice (see settled_now)
    sb.admin.reset_requests()
    if traced:
        tracemalloc.start()
    app_cpu, sandbox_cpu = cpu_seconds(), cpu_seconds(sb.process.pid)
    with PeakRss() as rss:
        started = time.perf_counter()
        summary = health_check.run(ctx, concurrency=CONCURRENCY, budget_seconds=3600, now=clock)
        wall = time.perf_counter() - started
    app_cpu, sandbox_cpu = cpu_seconds() - app_cpu, cpu_seconds(sb.process.pid) - sandbox_cpu
    traced_peak = None
    if traced:
        traced_peak = tracemalloc.get_traced_memory()[1] // 1024
        tracemalloc.stop()
    counts = {k: v for k, v in sb.admin.requests()["counts"].items() if v}
    return RunFigures(
        name,
        wall,
        counts,
        summary.checked,
        summary.by_status["connected"],
        summary.failures,
        rss.growth_kb,
        ctx.tenant_client().warm_apps,
        app_cpu,
        sandbox_cpu,
        traced_peak,
    )


def report(runs: list[RunFigures], accounts: int, tenants: int, setup: dict[str, float]) -> None:
    print_table(
        "Setup (not part of the runs)",
        ["step", "seconds"],
        [[step, seconds] for step, seconds in setup.items()],
    )
    targets = sorted({t for r in runs for t in r.counts})
    print_table(
        f"health_check.run: {accounts} accounts, {tenants} tenants, "
        f"sandbox latency {LATENCY_MS} ms, concurrency {CONCURRENCY}",
        [
            "run",
            "wall s",
            "requests",
            *targets,
            "req/account",
            "lower bound s",
            "wall/bound",
            "checked",
            "connected",
            "failures",
            "warm MSAL apps after",
            "app CPU s",
            "sandbox CPU s",
        ],
        [
            [
                r.name,
                r.wall,
                r.requests,
                *[r.counts.get(t, 0) for t in targets],
                r.requests / max(r.checked, 1),
                r.lower_bound,
                r.wall / r.lower_bound if r.lower_bound else float("nan"),
                r.checked,
                r.connected,
                r.failures,
                r.warm_apps,
                r.app_cpu,
                r.sandbox_cpu,
            ]
            for r in runs
        ],
    )
    print_table(
        "Memory of the app's process during each run",
        ["run", "RSS growth MiB", "tracemalloc peak MiB"],
        [
            [
                r.name,
                r.rss_growth_kb / 1024,
                r.traced_peak_kb / 1024 if r.traced_peak_kb is not None else float("nan"),
            ]
            for r in runs
        ],
    )
    timed = [r for r in runs if r.traced_peak_kb is None]
    for r in timed:
        if not r.checked or not r.lower_bound:
            note(f"{r.name}: no account was due, nothing to compare (HEALTH_CHECK_INTERVAL_HOURS?)")
            continue
        ratio = r.wall / r.lower_bound
        verdict = "met" if ratio <= RATIO_GOAL else "MISSED"
        note(f"{r.name}: wall/lower bound {ratio:.2f} (goal <= {RATIO_GOAL}: {verdict})")
    warm = next((r for r in timed if r.name == "warm"), None)
    if warm is not None:
        per_account = warm.requests / max(warm.checked, 1)
        verdict = "met" if per_account <= REQUESTS_GOAL else "MISSED"
        note(f"warm requests per account {per_account:.2f} (goal {REQUESTS_GOAL:.2f}: {verdict})")
    note(
        "lower bound = requests counted at the sandbox x 50 ms / 16 (a $batch counts once): every "
        "request costs at least the injected latency and at most 16 are in flight; the sandbox "
        "runs in its own process"
    )
    note(
        "RSS growth = peak resident set during the run (VmHWM, reset before it) minus the "
        "resident set before it"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(
        __doc__,
        argv,
        {"--tracemalloc": "add a third run (warm) traced by tracemalloc, for its peak (slower)"},
    )
    quiet_logging()
    loopback_only()
    tenants = QUICK_TENANTS if args.quick else TENANTS
    apps_per_tenant = QUICK_APPS_PER_TENANT if args.quick else APPS_PER_TENANT
    accounts = tenants * apps_per_tenant
    started = time.monotonic()
    setup: dict[str, float] = {}

    step = time.perf_counter()
    pems = generate_keys(accounts)  # before any thread starts
    setup[f"{accounts} RSA-2048 keys (process pool)"] = time.perf_counter() - step
    with sandbox_process() as sb, tempfile.TemporaryDirectory(prefix="bench-health-") as folder:
        loopback_only(sb.ca_bundle_path)
        step = time.perf_counter()
        registrations = register_fleet(sb, tenants, apps_per_tenant)
        setup[f"sandbox: {tenants} tenants, {accounts} apps (admin API)"] = (
            time.perf_counter() - step
        )
        settings = app_settings(Path(folder) / "state", sb.app_settings())
        step = time.perf_counter()
        made = link_fleet(
            build_app_context(settings, key_generator=key_generator(pems)), registrations
        )
        setup[f"{accounts} keys stored and accounts linked"] = time.perf_counter() - step
        step = time.perf_counter()
        upload_certificates(sb, registrations, made)
        setup[f"{accounts} certificates uploaded (admin API)"] = time.perf_counter() - step
        del pems, registrations, made
        sb.admin.set_latency(LATENCY_MS)

        ctx = build_app_context(settings)  # cold: nothing warm, no metadata cached
        runs = [run_once("cold", ctx, sb), run_once("warm", ctx, sb)]
        if args.tracemalloc:
            runs.append(run_once("warm, traced", ctx, sb, traced=True))
    report(runs, accounts, tenants, setup)
    print(
        json.dumps({"benchmark": "health_check", "seconds": round(time.monotonic() - started, 1)})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
