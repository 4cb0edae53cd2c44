"""Key custody (issue 11): POST /api/keys under each custody, and verification under vault-key.

Figures:
- `POST /api/keys` (2048-bit keys) under `local`, `vault-secret` and `vault-key`, with the
  sandbox (Entra, Graph and the Key Vault stand-in) answering every request 20 ms late: p50 and
  p99 of the wall time, one client, sequential;
- a verification under `vault-key`, cold (a fresh app context: no warm MSAL app, no metadata, no
  key signer kept) and warm: outbound requests counted at the sandbox by target (metadata,
  token, graph, keyvault), and the app's own overhead (wall minus the sandbox handlers' time);
- a warm health-check run over the same accounts: Key Vault requests (goal 0: cached tokens,
  no `sign`).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from bench._support import (
    RunningApp,
    SandboxProcess,
    SandboxVaultCredential,
    app_settings,
    arguments,
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
from bench.verify import link_connected_account

LATENCY_MS = 20
KEYS, QUICK_KEYS = 60, 10
VERIFIES, QUICK_VERIFIES = 40, 8
CUSTODIES = ("local", "vault-secret", "vault-key")
TARGETS = ("metadata", "token", "graph", "keyvault")


def settings_for(sb: SandboxProcess, folder: Path, custody: str) -> dict[str, str]:
    extra = {**sb.app_settings()}
    if custody != "local":
        extra.update({"KEY_VAULT_URL": sb.keyvault_url, "KEY_CUSTODY": custody})
    return app_settings(folder / custody, extra)


def client() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def new_key_times(app: RunningApp, runs: int) -> list[float]:
    http = client()
    body = {
        "tenantId": str(uuid.uuid4()),
        "applicationId": str(uuid.uuid4()),
        "displayName": "Bench",
    }
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = http.post(app.api("/keys"), json=body, timeout=60)
        times.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/keys answered {response.status_code}")
    return times


Sample = tuple[float, float, Counter[str]]  # wall, the app's overhead, requests by target


def verify(app: RunningApp, sb: SandboxProcess, account_id: str) -> Sample:
    sb.admin.reset_requests()
    started = time.perf_counter()
    response = client().post(app.api(f"/accounts/{account_id}/verify"), timeout=60)
    wall = time.perf_counter() - started
    if response.status_code != 200 or response.json()["status"] != "connected":
        raise RuntimeError(f"verification answered {response.status_code}: {response.text[:200]}")
    record = sb.admin.requests()["value"]
    handlers = sum(r["durationMs"] for r in record) / 1000  # injected latency included
    return wall, wall - handlers, Counter(r["target"] for r in record)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    started = time.monotonic()
    keys, verifies = (QUICK_KEYS, QUICK_VERIFIES) if args.quick else (KEYS, VERIFIES)
    key_rows: list[list[Any]] = []
    with sandbox_process() as sb, tempfile.TemporaryDirectory(prefix="bench-custody-") as tmp:
        loopback_only(sb.ca_bundle_path)
        folder = Path(tmp)
        sb.admin.set_latency(LATENCY_MS)
        for custody in CUSTODIES:
            options = {"vault_credential": SandboxVaultCredential()}
            with local_host(settings_for(sb, folder, custody), **options) as app:
                new_key_times(app, 2)  # warm the clients and the vault's challenge
                times = new_key_times(app, keys)
            key_rows.append([custody, ms(median(times)), ms(percentile(times, 99)), len(times)])

        settings = settings_for(sb, folder, "vault-key")
        cold: list[Sample] = []
        with local_host(settings, vault_credential=SandboxVaultCredential()) as app:
            accounts = [link_connected_account(app, sb) for _ in range(max(verifies // 4, 2))]
            for account_id in accounts:
                build_app_context(settings, vault_credential=SandboxVaultCredential())
                cold.append(verify(app, sb, account_id))
            for account_id in accounts:  # settle: each account once in the last context
                verify(app, sb, account_id)
            warm = [verify(app, sb, accounts[i % len(accounts)]) for i in range(verifies)]
            from shared.timer import run as health_check

            ctx = build_app_context(settings, vault_credential=SandboxVaultCredential())
            health_check.run(ctx, account_seconds=30)  # cold: a token (one sign) per account
            sb.admin.reset_requests()
            health_check.run(ctx, account_seconds=30)
            timer_record = sb.admin.requests()["value"]
            timer_counts = Counter(r["target"] for r in timer_record)
            timer_keys = [
                r for r in timer_record if r["target"] == "keyvault" and "/m365link-" in r["path"]
            ]
    print_table(
        f"POST /api/keys, 2048-bit, sandbox latency {LATENCY_MS} ms on every request (ms)",
        ["custody", "p50", "p99", "runs"],
        key_rows,
    )

    def row(name: str, samples: list[Sample]) -> list[Any]:
        totals = Counter[str]()
        for _, _, counts in samples:
            totals.update(counts)
        return [
            name,
            *(totals[t] / len(samples) for t in TARGETS),
            ms(median([s[1] for s in samples])),
            ms(percentile([s[1] for s in samples], 99)),
        ]

    print_table(
        "Verification under vault-key: requests per verification (mean) and app overhead (ms)",
        ["run", *TARGETS, "overhead p50", "overhead p99"],
        [row("cold", cold), row("warm", warm)],
    )
    print_table(
        f"Warm health-check run over {len(accounts)} vault-key accounts",
        ["requests", *TARGETS, "Key Vault requests for keys (goal 0)"],
        [
            [sum(timer_counts.values()), *(timer_counts[t] for t in TARGETS), len(timer_keys)],
        ],
    )
    note(
        "overhead = wall - the sandbox handlers' time (durationMs, injected latency included); "
        "the timer's housekeeping lists the vault's keys and secrets once per run (not counted "
        "as requests for keys)"
    )
    print(json.dumps({"benchmark": "custody", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
