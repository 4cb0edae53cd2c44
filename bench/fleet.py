"""The due-based timer and the paged list on large fleets (issue 14).

Figures:

1. Accounts re-verified per minute by ONE instance (`health_check.run`, concurrency the
   settings' default 8, HEALTH_CHECK_INTERVAL_HOURS 6, a 60 s budget) with 50 ms sandbox latency,
   on a fleet of 20,000 accounts in the account store (SQLite). 600 of them are real: sandbox
   tenants and app registrations with their key's certificate uploaded, linked through the
   stores' interfaces (as bench.health_check does). The other 19,400 were verified less than
   five hours ago (not due) and are written straight into the store, rows exactly as the store
   writes them (codec + schedule), each carrying a real verification report. Two runs: the real
   accounts never verified (a fresh app context: metadata, token and batch per account), then,
   all made stale (last verified 7 hours ago, through `update_account`), the same context again
   (tokens still cached: one batch each). Against the bound concurrency / (requests per account
   x latency), the requests counted at the sandbox during the run.
2. Time and peak memory (tracemalloc) to find the due accounts (`take_due` in batches of 16, as
   a run of 8 workers takes them) among 100,000 accounts of which 100 are due, and among
   10,000: SQLite and Table Storage (Azurite, in memory; loaded in 100-entity transactions, the
   load time shown).
3. `GET /api/accounts?top=100` p50/p99 through the local host with 10,000 accounts in the
   owner's partition (every account with a real report), both backends; and every page of the
   10,000 once by following `nextLink`.

--quick shrinks the sizes (200 real accounts in a fleet of 2,000; 20,000 to search; 2,000 to
list) for a smoke run.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import sqlite3
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench._support import (
    SandboxProcess,
    app_settings,
    arguments,
    azurite,
    build_app_context,
    local_host,
    loopback_only,
    median,
    ms,
    note,
    percentile,
    print_table,
    quiet_logging,
    sandbox_process,
)
from bench.health_check import (
    generate_keys,
    key_generator,
    link_fleet,
    register_fleet,
    upload_certificates,
)
from shared.adapters.accountstore.base import AccountStore
from shared.adapters.accountstore.codec import account_to_row, split_report
from shared.adapters.accountstore.sqlite.schema import ROW_COLUMNS, account_row
from shared.adapters.accountstore.sqlite.store import SqliteAccountStore
from shared.adapters.accountstore.table.accounts import index_entity
from shared.adapters.accountstore.table.layout import partition_of
from shared.adapters.accountstore.table.schedule import set_rows
from shared.adapters.accountstore.table.store import TableAccountStore, build_service
from shared.adapters.identity.base import LOCAL_OWNER
from shared.core.model import Account
from shared.core.schedule import DEFAULT_POLICY, SchedulePolicy
from shared.core.settings import TableSettings
from shared.support.timefmt import to_rfc3339, utc_now
from shared.timer import housekeeping
from shared.timer import run as health_check
from shared.verification.verify import verify_account

LATENCY_MS = 50
INTERVAL_HOURS = 6
BUDGET_SECONDS = 60
FLEET, QUICK_FLEET = 20_000, 2_000
TENANTS, APPS_PER_TENANT = 20, 30  # 600 real accounts
QUICK_TENANTS, QUICK_APPS_PER_TENANT = 5, 40
SEARCH, QUICK_SEARCH = 100_000, 20_000
SMALL_SEARCH = 10_000
DUE = 100
LISTED, QUICK_LISTED = 10_000, 2_000
LISTS, QUICK_LISTS = 200, 20
PAGE = 100
TAKE_BATCH = 16  # what health_check.run takes at a time with 8 workers (2 each)
LEASE = timedelta(minutes=2)
FILLER_OWNERS = 100  # the search fleet's owners (partitions)
TRANSACTION = 100  # entities per entity-group transaction (the service's limit)
LOADER_THREADS = 2  # client threads of each loader process (one process per core)


# --- filler accounts, written straight into the stores -------------------------------------
def filler(n: int, owner: str, report: dict[str, Any], now: datetime, *, due: bool) -> Account:
    """A connected account verified 1 to 300 minutes ago (not due for hours), or 7 hours ago
    (due); its report a copy of a real one; its certificate far from expiry."""
    account_id = str(uuid.UUID(int=n + 1))
    verified = now - (
        timedelta(hours=INTERVAL_HOURS + 1) if due else timedelta(minutes=1 + n % 300)
    )
    created = now - timedelta(days=60, seconds=n)  # one account per second: a stable order
    return Account(
        id=account_id,
        owner=owner,
        display_name=f"Tenant {n}",
        tenant_id=str(uuid.uuid4()),
        application_id=str(uuid.uuid4()),
        organization_name=f"tenant{n}.onmicrosoft.com",
        cloud="global",
        key_id=str(uuid.uuid4()),
        thumbprint=f"{n:040X}",
        certificate_not_after=now + timedelta(days=200),
        status="connected",
        created_at=created,
        updated_at=verified,
        last_verified_at=verified,
        last_verification=verified_report(report, account_id, verified),
    )


def verified_report(report: dict[str, Any], account_id: str, at: datetime) -> dict[str, Any]:
    """A copy of a real report, as if the verification had started `at` (the schedule orders
    accounts by their last verification's start)."""
    moment = to_rfc3339(at)
    return {**report, "accountId": account_id, "startedAt": moment, "checkedAt": moment}


def fleet_of(
    stop: int,
    due: int,
    owners: Sequence[str],
    report: dict[str, Any],
    now: datetime,
    start: int = 0,
) -> Iterator[Account]:
    """Filler accounts `start`..`stop` - 1 over `owners` in turn, the first `due` of them due."""
    for n in range(start, stop):
        yield filler(n, owners[n % len(owners)], report, now, due=n < due)


def bulk_sqlite(store: SqliteAccountStore, accounts: Iterable[Account]) -> None:
    """Rows as `SqliteAccountStore.link` writes them (no key records: no route reads them
    here)."""
    rows = (account_row(a, store.policy) for a in accounts)
    with sqlite3.connect(store.path) as db:
        db.executemany(
            f"INSERT INTO accounts ({', '.join(ROW_COLUMNS)}) "  # noqa: S608 - constant text
            f"VALUES ({', '.join('?' * len(ROW_COLUMNS))})",
            rows,
        )


def table_rows(account: Account, policy: SchedulePolicy, *, indexed: bool) -> list[dict[str, Any]]:
    """The rows `TableAccountStore.link` writes for an account: the account, its schedule set,
    and (`indexed`) the copy the list pages on. The pair row and key record are left out:
    nothing measured here reads them."""
    pk, place = partition_of(account.owner), policy.place(account)
    rows = [
        {"PartitionKey": pk, "RowKey": f"acct_{account.id}", "Kind": "account",
         **split_report(account_to_row(account))},
        *set_rows(pk, account.owner, account.id, place, account.version),
    ]  # fmt: skip
    if indexed:
        rows.append(index_entity(pk, account))
    return rows


@dataclass(frozen=True)
class Slice:
    """The part of a fleet one loader process writes into a table."""

    connection_string: str
    table: str
    start: int
    stop: int
    due: int
    owners: tuple[str, ...]
    report: dict[str, Any]
    now: datetime
    indexed: bool


def load_slice(part: Slice) -> int:
    """Write a slice's rows in entity-group transactions of 100 (one partition each), from a
    few threads; returns the entities written. Runs in a process of its own: the SDK's batch
    encoding costs far more CPU than Azurite's handling."""
    loopback_only()
    client = table_store(part.connection_string, part.table)._client()
    pending: dict[str, list[dict[str, Any]]] = {}
    written = 0

    def submit(rows: list[dict[str, Any]]) -> None:
        client.submit_transaction([("upsert", r) for r in rows])

    accounts = fleet_of(part.stop, part.due, part.owners, part.report, part.now, part.start)
    with ThreadPoolExecutor(max_workers=LOADER_THREADS) as pool:
        futures: list[Future[None]] = []
        for account in accounts:
            for row in table_rows(account, DEFAULT_POLICY, indexed=part.indexed):
                rows = pending.setdefault(row["PartitionKey"], [])
                rows.append(row)
                if len(rows) == TRANSACTION:
                    futures.append(pool.submit(submit, rows))
                    pending[row["PartitionKey"]] = []
                    written += len(rows)
            while len(futures) > 4 * LOADER_THREADS:  # bounded memory: wait for the oldest
                futures.pop(0).result()
        for rows in pending.values():
            if rows:
                futures.append(pool.submit(submit, rows))
                written += len(rows)
        for future in futures:
            future.result()
    return written


def bulk_table(
    connection_string: str,
    table: str,
    count: int,
    owners: Sequence[str],
    report: dict[str, Any],
    now: datetime,
    *,
    indexed: bool,
) -> tuple[TableAccountStore, int]:
    """A table of `count` filler accounts (the first DUE due), loaded by one process per core;
    then each owner's `meta` row (as a store of this release keeps it: counts, index built)
    and the schedule's finished backfill. Returns the store and the entities written."""
    store = table_store(connection_string, table)
    client = store._client()  # creates the table
    workers = max(multiprocessing.cpu_count(), 1)
    bounds = [count * w // workers for w in range(workers + 1)]
    parts = [
        Slice(connection_string, table, lo, hi, DUE, tuple(owners), report, now, indexed)
        for lo, hi in itertools.pairwise(bounds)
    ]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        written = sum(pool.map(load_slice, parts))
    linked = Counter(owners[n % len(owners)] for n in range(count))
    for owner, number in linked.items():
        client.upsert_entity({"PartitionKey": partition_of(owner), "RowKey": "meta",
                              "Kind": "meta", "seq": 0, "linked": number, "connected": number,
                              "indexed": indexed})  # fmt: skip
    client.upsert_entity({"PartitionKey": "%schedule", "RowKey": "backfill", "Kind": "backfill",
                          "continuation": "", "done": True})  # fmt: skip
    return store, written + len(linked) + 1


# --- figure 1: re-verifications per minute --------------------------------------------------
@dataclass
class RunFigures:
    name: str
    wall: float
    checked: int
    connected: int
    failures: int
    not_reached: int
    counts: dict[str, int]
    housekeeping: float
    concurrency: int

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def per_account(self) -> float:
        return self.requests / max(self.checked, 1)

    @property
    def per_minute(self) -> float:
        return self.checked / self.wall * 60

    @property
    def per_minute_verifying(self) -> float:
        """Without the housekeeping that ends every run."""
        return self.checked / max(self.wall - self.housekeeping, 1e-9) * 60

    @property
    def bound(self) -> float:
        """At most `concurrency` accounts in flight, each waiting `per_account` x latency."""
        if not self.requests:
            return float("nan")
        return self.concurrency / (self.per_account * LATENCY_MS / 1000) * 60


def timed_run(name: str, ctx: Any, sb: SandboxProcess) -> RunFigures:
    sb.admin.reset_requests()
    started = time.perf_counter()
    summary = health_check.run(ctx, budget_seconds=BUDGET_SECONDS)
    wall = time.perf_counter() - started
    counts = {k: v for k, v in sb.admin.requests()["counts"].items() if v}
    # What the run's housekeeping took, timed apart (it reads every key record once per run).
    started = time.perf_counter()
    housekeeping.run(ctx, utc_now())
    cleaning = time.perf_counter() - started
    return RunFigures(
        name,
        wall,
        summary.checked,
        summary.by_status["connected"],
        summary.failures,
        summary.not_reached,
        counts,
        cleaning,
        ctx.settings.health_check_concurrency,
    )


def make_stale(ctx: Any, accounts: Sequence[Account]) -> None:
    """As if the accounts were last verified 7 hours ago: due again, stalest first."""
    for linked in accounts:
        account = ctx.accounts.get_account(linked.owner, linked.id)
        assert account is not None and account.last_verified_at is not None
        assert account.last_verification is not None
        stale = account.last_verified_at - timedelta(hours=INTERVAL_HOURS + 1)
        report = verified_report(account.last_verification, account.id, stale)
        ctx.accounts.update_account(
            account.updated(last_verified_at=stale, last_verification=report)
        )


def figure_reverified(
    sb: SandboxProcess, folder: Path, pems: list[bytes], tenants: int, apps: int, fleet: int
) -> tuple[list[RunFigures], dict[str, float], dict[str, Any]]:
    """Figure 1; also answers a real verification report (the fillers' template)."""
    setup: dict[str, float] = {}
    settings = app_settings(
        folder / "fleet", {**sb.app_settings(), "HEALTH_CHECK_INTERVAL_HOURS": str(INTERVAL_HOURS)}
    )
    step = time.perf_counter()
    registrations = register_fleet(sb, tenants, apps)
    setup[f"sandbox: {tenants} tenants, {tenants * apps} apps (admin API)"] = (
        time.perf_counter() - step
    )
    step = time.perf_counter()
    ctx = build_app_context(settings, key_generator=key_generator(pems))
    made = link_fleet(ctx, registrations)
    setup[f"{len(made)} keys stored and accounts linked"] = time.perf_counter() - step
    step = time.perf_counter()
    upload_certificates(sb, registrations, made)
    setup[f"{len(made)} certificates uploaded (admin API)"] = time.perf_counter() - step
    real = [a for a in ctx.accounts.list_all_accounts()]
    # One real report, at no latency, for the fillers to carry: the real account it came from
    # is verified now, so it is not due in the first run.
    sample = real.pop()
    report = verify_account(ctx, sample.owner, sample.id)
    step = time.perf_counter()
    store = ctx.accounts
    assert isinstance(store, SqliteAccountStore)
    fillers = fleet - len(real) - 1
    owners = [f"owner-{t}" for t in range(tenants)]
    bulk_sqlite(store, fleet_of(fillers, 0, owners, report, utc_now()))
    setup[f"{fillers} not-due accounts written into the store"] = time.perf_counter() - step

    sb.admin.set_latency(LATENCY_MS)
    ctx = build_app_context(settings)  # cold: no warm MSAL application, no metadata cached
    runs = [timed_run("first verification (cold)", ctx, sb)]
    make_stale(ctx, real)
    runs.append(timed_run("re-verification (warm)", ctx, sb))
    sb.admin.set_latency(0)
    return runs, setup, report


def report_reverified(runs: list[RunFigures], fleet: int, real: int) -> None:
    targets = sorted({t for r in runs for t in r.counts})
    print_table(
        f"1. health_check.run, one instance: {fleet} accounts in the store, {real} of them due; "
        f"sandbox latency {LATENCY_MS} ms, concurrency {runs[0].concurrency}, budget "
        f"{BUDGET_SECONDS} s, interval {INTERVAL_HOURS} h (SQLite)",
        ["run", "wall s", "checked", "failures", "not reached", *targets, "req/account",
         "verified/min", "bound/min", "ratio", "housekeeping s", "verified/min w/o hk",
         "ratio w/o hk"],
        [
            [r.name, r.wall, r.checked, r.failures, r.not_reached,
             *[r.counts.get(t, 0) for t in targets], r.per_account, r.per_minute, r.bound,
             r.per_minute / r.bound, r.housekeeping, r.per_minute_verifying,
             r.per_minute_verifying / r.bound]
            for r in runs
        ],
    )  # fmt: skip
    note(
        "bound = concurrency / (requests per account x latency): each request the sandbox "
        "counted (a $batch once) waits at least the injected latency, at most `concurrency` "
        "accounts are in flight; ratio = verified/min / bound (1 = the latency is all it costs)"
    )
    note(
        "the run ends when no due account is left (or at the budget); housekeeping (read every "
        "key record, sweep the key store) ends every run and is timed apart, after the run"
    )
    note(
        "with the default 6 h interval the tokens (1 h) and metadata (1 h cache) of a real "
        "re-verification have expired: it costs what the cold row shows, not the warm one"
    )


# --- figure 2: finding the due accounts ----------------------------------------------------
@dataclass
class FindFigures:
    backend: str
    accounts: int
    found: int
    seconds: float
    peak_kib: float
    calls: int | None = None
    load_seconds: float = float("nan")
    entities: int | None = None


class CountingClient:
    """A TableClient that counts the calls reaching the service (the SDK's, not the app's)."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.calls = inner, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if callable(attribute) and not name.startswith("_"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


def take_all(store: AccountStore) -> list[Account]:
    found: list[Account] = []
    now = utc_now()
    while batch := store.take_due(now, TAKE_BATCH, LEASE, "bench"):
        found += batch
    return found


def find_due(backend: str, store: AccountStore, accounts: int) -> FindFigures:
    """Time one pass (untraced), release the leases, then a traced pass for the peak."""
    counting = None
    if isinstance(store, TableAccountStore):
        counting = CountingClient(store._table)
        store._table = counting  # type: ignore[assignment]
    started = time.perf_counter()
    found = take_all(store)
    seconds = time.perf_counter() - started
    calls = counting.calls if counting is not None else None
    store.release(found, "bench")
    tracemalloc.start()
    again = take_all(store)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store.release(again, "bench")
    if counting is not None:
        assert isinstance(store, TableAccountStore)
        store._table = counting._inner
    assert len(found) == len(again), (len(found), len(again))
    return FindFigures(backend, accounts, len(found), seconds, peak / 1024, calls)


def sqlite_store(path: Path) -> SqliteAccountStore:
    return SqliteAccountStore(path, DEFAULT_POLICY)


def table_store(connection_string: str, table: str) -> TableAccountStore:
    settings = TableSettings(table, connection_string=connection_string)
    return TableAccountStore(build_service(settings), table, DEFAULT_POLICY)


# --- figure 3: the first page, and every page ----------------------------------------------
@dataclass
class ListFigures:
    backend: str
    first: list[float]
    pages: list[float]
    body_kib: float
    seen: int


def list_pages(url: str, repeats: int, expected: int) -> tuple[list[float], list[float], int, int]:
    http = requests.Session()
    http.trust_env = False
    first: list[float] = []
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = http.get(f"{url}/api/accounts", params={"top": PAGE}, timeout=60)
        first.append(time.perf_counter() - started)
        if response.status_code != 200 or len(response.json()["value"]) != min(PAGE, expected):
            raise RuntimeError(f"GET /api/accounts answered {response.status_code}")
        size = len(response.content)
    pages: list[float] = []
    ids: set[str] = set()
    link: str | None = f"{url}/api/accounts?top={PAGE}"
    while link:
        started = time.perf_counter()
        response = http.get(link, timeout=60)
        pages.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {link} answered {response.status_code}")
        body = response.json()
        ids.update(a["id"] for a in body["value"])
        link = body.get("nextLink")
        if link and link.startswith("/"):
            link = url + link
    return first, pages, size, len(ids)


def figure_list(backend: str, settings: dict[str, str], repeats: int, expected: int) -> ListFigures:
    with local_host(settings) as app:
        list_pages(app.url, 2, expected)  # warm: connections, the index, the page cache
        first, pages, size, seen = list_pages(app.url, repeats, expected)
    return ListFigures(backend, first, pages, size / 1024, seen)


def search_and_list(
    report: dict[str, Any], folder: Path, search: int, listed: int, lists: int
) -> tuple[list[FindFigures], list[ListFigures]]:
    finds: list[FindFigures] = []
    lists_out: list[ListFigures] = []
    now = utc_now()
    owners = [f"owner-{n}" for n in range(FILLER_OWNERS)]

    # SQLite: the search fleet in a file of its own; the listed owner's in the app's own file.
    step = time.perf_counter()
    big = sqlite_store(folder / "search.sqlite3")
    bulk_sqlite(big, fleet_of(search, DUE, owners, report, now))
    load = time.perf_counter() - step
    figures = find_due("SQLite", big, search)
    figures.load_seconds = load
    finds.append(figures)
    settings = app_settings(folder / "list-sqlite")
    step = time.perf_counter()
    small = sqlite_store(folder / "list-sqlite" / "accounts.sqlite3")
    bulk_sqlite(small, fleet_of(listed, DUE, [LOCAL_OWNER], report, now))
    load = time.perf_counter() - step
    figures = find_due("SQLite", small, listed)
    figures.load_seconds = load
    finds.insert(0, figures)
    lists_out.append(figure_list("SQLite", settings, lists, listed))

    with azurite() as service:
        for table, count, owners_of, indexed in (
            ("benchlist", listed, [LOCAL_OWNER], True),
            ("benchsearch", search, owners, False),
        ):
            step = time.perf_counter()
            store, entities = bulk_table(
                service.connection_string, table, count, owners_of, report, now, indexed=indexed
            )
            load = time.perf_counter() - step
            figures = find_due("Azurite", store, count)
            figures.load_seconds, figures.entities = load, entities
            finds.append(figures)
        settings = app_settings(
            folder / "list-table",
            {"ACCOUNTS_STORAGE": service.connection_string, "ACCOUNTS_TABLE_NAME": "benchlist"},
        )
        lists_out.append(figure_list("Azurite", settings, lists, listed))
    return finds, lists_out


def report_search(finds: list[FindFigures]) -> None:
    print_table(
        f"2. Finding the {DUE} due accounts (take_due in batches of {TAKE_BATCH} until none is "
        "left, as one run does)",
        ["backend", "accounts", "found", "ms", "tracemalloc peak KiB", "store calls",
         "load s", "entities loaded"],
        [
            [f.backend, f.accounts, f.found, ms(f.seconds), f.peak_kib,
             "-" if f.calls is None else f.calls, f.load_seconds,
             "-" if f.entities is None else f.entities]
            for f in finds
        ],
    )  # fmt: skip
    note(
        "ms: one untraced pass (each due account leased, then read); the peak is of a second, "
        "traced pass after the leases were released. Table store calls: the schedule's two "
        "orderings queried per batch, plus a lease (one ETag-checked transaction over the "
        "account's schedule rows) and a point read per due account"
    )
    note(
        "Azurite rows: the account (with a real report) and its schedule rows (anchor, last "
        "start, renewal moment); the 10,000 listed ones also their list-index copy (acctidx_), "
        f"and each owner its meta row; loaded in {TRANSACTION}-entity transactions by one "
        "process per core"
    )


def report_list(lists_out: list[ListFigures], listed: int) -> None:
    print_table(
        f"3. GET /api/accounts?top={PAGE} through the local host, {listed} accounts in the owner's "
        "partition (one client)",
        ["backend", "first page p50 ms", "p99 ms", "runs", "every page p50 ms", "p99 ms",
         "max ms", "pages", "accounts seen", "body KiB"],
        [
            [f.backend, ms(median(f.first)), ms(percentile(f.first, 99)), len(f.first),
             ms(median(f.pages)), ms(percentile(f.pages, 99)), ms(max(f.pages)), len(f.pages),
             f.seen, f.body_kib]
            for f in lists_out
        ],
    )  # fmt: skip
    note(
        "every page: the whole list once, following nextLink (keyset pages: the last page costs "
        "what the first does); each account carries a real verification report"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    started = time.monotonic()
    if args.quick:
        tenants, apps, fleet = QUICK_TENANTS, QUICK_APPS_PER_TENANT, QUICK_FLEET
        search, listed, lists = QUICK_SEARCH, QUICK_LISTED, QUICK_LISTS
    else:
        tenants, apps, fleet = TENANTS, APPS_PER_TENANT, FLEET
        search, listed, lists = SEARCH, LISTED, LISTS
    step = time.perf_counter()
    pems = generate_keys(tenants * apps)  # before any thread starts
    setup = {f"{tenants * apps} RSA-2048 keys (process pool)": time.perf_counter() - step}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        with sandbox_process() as sb:
            loopback_only(sb.ca_bundle_path)
            runs, more, report = figure_reverified(sb, folder, pems, tenants, apps, fleet)
        setup.update(more)
        del pems
        finds, lists_out = search_and_list(report, folder, search, listed, lists)
    print_table("Setup (not measured)", ["step", "seconds"], list(map(list, setup.items())))
    report_reverified(runs, fleet, tenants * apps - 1)
    report_search(finds)
    report_list(lists_out, listed)
    print(json.dumps({"benchmark": "fleet", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
