"""Federated credentials (issue 21) beside certificates, under `vault-key`, in one run.

Figures:
- `POST /api/keys` of each kind (`certificate`: a 2048-bit key made and signing its certificate
  in the Key Vault stand-in; `federated`: a record only, the issuer key already there): p50 and
  p99 of the wall time, one client, sequential, and the requests each one sends to Entra, Graph
  and Key Vault (counted at the sandbox). The first federated credential, which makes the
  issuer key, is shown on its own;
- a verification of each kind (POST /api/accounts/{id}/verify), cold (a fresh app context: no
  MSAL app, no metadata, no signer, no issuer keys in memory) and warm: p50/p99 and the requests
  per verification by target, Key Vault `sign`s apart; and a timer run on cached tokens;
- the JWKS route's throughput: GET /api/oidc/jwks for a fixed time from 1 and from 8 clients,
  requests per second, and the Key Vault requests it caused (goal 0).

The sandbox answers every request `LATENCY_MS` late (as bench.custody does), so a Key Vault
round trip costs what a network hop would; the issuer's documents are served by the app itself
(no added latency) and fetched by the sandbox over loopback HTTP.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    loopback_only,
    ms,
    note,
    percentile,
    print_table,
    quiet_logging,
    sandbox_process,
)
from bench.verify import link_connected_account

LATENCY_MS = 20
KEYS, QUICK_KEYS = 40, 8
ACCOUNTS, QUICK_ACCOUNTS = 6, 2
VERIFIES, QUICK_VERIFIES = 40, 8
JWKS_SECONDS, QUICK_JWKS_SECONDS = 2.0, 1.0
KINDS = ("certificate", "federated")
TARGETS = ("metadata", "token", "graph", "keyvault")


def client() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


@dataclass
class Sample:
    wall: float
    counts: Counter[str] = field(default_factory=Counter)


def counted(sb: SandboxProcess) -> Counter[str]:
    """The sandbox's record since the last reset, by target; Key Vault `sign`s as `sign`."""
    record = sb.admin.requests()["value"]
    counts = Counter(r["target"] for r in record)
    counts["sign"] = sum(
        1 for r in record if r["target"] == "keyvault" and r["path"].endswith("/sign")
    )
    return counts


def timed(sb: SandboxProcess, call: Callable[[], requests.Response], expect: int) -> Sample:
    sb.admin.reset_requests()
    started = time.perf_counter()
    response = call()
    wall = time.perf_counter() - started
    if response.status_code != expect:
        raise RuntimeError(f"answered {response.status_code}: {response.text[:300]}")
    return Sample(wall, counted(sb))


# --- the app under vault-key, serving its issuer at its own URL ----------------------------------
@contextmanager
def vault_key_app(sb: SandboxProcess, folder: Path) -> Iterator[tuple[RunningApp, dict[str, str]]]:
    from localdev.host import LocalHost
    from shared.app.bootstrap import set_context

    host = LocalHost()
    host.bind()  # the port first: OIDC_ISSUER is the host's own URL, as under `make run`
    extra = {
        **sb.app_settings(),
        "KEY_VAULT_URL": sb.keyvault_url,
        "KEY_CUSTODY": "vault-key",
        "OIDC_ISSUER": host.issuer_url(),
    }
    settings = app_settings(folder / "state", extra)
    context = build_app_context(settings, vault_credential=SandboxVaultCredential())
    url = host.start()
    try:
        yield RunningApp(url, context, host), settings
    finally:
        host.stop()
        set_context(None)


# --- POST /api/keys ------------------------------------------------------------------------------
def new_keys(app: RunningApp, sb: SandboxProcess, kind: str, runs: int) -> list[Sample]:
    http = client()
    body = {
        "kind": kind,
        "tenantId": str(uuid.uuid4()),
        "applicationId": str(uuid.uuid4()),
        "displayName": "Bench",
    }
    return [
        timed(sb, lambda: http.post(app.api("/keys"), json=body, timeout=60), 201)
        for _ in range(runs)
    ]


# --- linking and verifying -----------------------------------------------------------------------
def link_federated_account(app: RunningApp, sb: SandboxProcess) -> str:
    """A customer walking the federated guide: register the app, POST /api/keys with kind
    federated, add the downloaded `.json` to the app registration, POST /api/accounts."""
    admin = sb.admin
    domain = f"fabrikam{uuid.uuid4().hex[:6]}.onmicrosoft.com"
    tenant_id = admin.create_tenant("Fabrikam", domains=[domain])["tenantId"]
    app_id = admin.create_application(tenant_id, "Governance portal")["appId"]
    admin.set_permissions(tenant_id, app_id, ["AccessReview.Read.All"])
    admin.set_directory_roles(tenant_id, app_id, ["Global Reader"])
    http = client()
    ids = {"tenantId": tenant_id, "applicationId": app_id}
    key = http.post(
        app.api("/keys"), json={**ids, "kind": "federated", "displayName": "Bench"}, timeout=30
    ).json()
    download = http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "json"}, timeout=30)
    admin.add_federated_credential(tenant_id, app_id, download.json())
    body = {**ids, "displayName": "Bench", "organizationName": domain, "keyId": key["keyId"]}
    account = http.post(app.api("/accounts"), json=body, timeout=30)
    if account.status_code != 201:
        raise RuntimeError(f"POST /api/accounts answered {account.status_code}")
    return str(account.json()["id"])


def verify(app: RunningApp, sb: SandboxProcess, account_id: str) -> Sample:
    http = client()
    return timed(sb, lambda: http.post(app.api(f"/accounts/{account_id}/verify"), timeout=60), 200)


@dataclass
class Verifications:
    cold: list[Sample] = field(default_factory=list)
    warm: list[Sample] = field(default_factory=list)


def verifications(
    app: RunningApp,
    sb: SandboxProcess,
    settings: dict[str, str],
    linked: dict[str, list[str]],
    runs: int,
) -> tuple[dict[str, Verifications], Any]:
    """Cold (each in a fresh context) then warm verifications of each kind; the context the
    warm ones ran in, whose token cache then holds every account's token."""
    found = {kind: Verifications() for kind in linked}
    context = app.context
    for kind, accounts in linked.items():
        for account_id in accounts:
            context = build_app_context(settings, vault_credential=SandboxVaultCredential())
            found[kind].cold.append(verify(app, sb, account_id))
    for accounts in linked.values():  # settle: each account once in the last context
        for account_id in accounts:
            verify(app, sb, account_id)
    for kind, accounts in linked.items():
        found[kind].warm = [verify(app, sb, accounts[i % len(accounts)]) for i in range(runs)]
    return found, context


def timer_run(context: Any, sb: SandboxProcess) -> Counter[str]:
    """A timer run over every account on cached tokens: requests by target."""
    from shared.timer import run as health_check

    sb.admin.reset_requests()
    health_check.run(context, account_seconds=30)
    return counted(sb)


# --- the JWKS route ------------------------------------------------------------------------------
def jwks_throughput(app: RunningApp, sb: SandboxProcess, clients: int, seconds: float) -> float:
    """GET /api/oidc/jwks from `clients` threads for `seconds`: requests per second."""
    done = [0] * clients
    failed: list[str] = []
    stop_at = time.perf_counter() + seconds

    def hammer(slot: int) -> None:
        http = client()
        while time.perf_counter() < stop_at:
            response = http.get(app.api("/oidc/jwks"), timeout=10)
            if response.status_code != 200 or '"keys"' not in response.text:
                failed.append(str(response.status_code))
                return
            done[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"the JWKS answered {failed[0]}")
    return sum(done) / elapsed


# --- the run -------------------------------------------------------------------------------------
@dataclass
class Figures:
    keys: dict[str, list[Sample]] = field(default_factory=dict)
    first_federated: Sample | None = None
    verifications: dict[str, Verifications] = field(default_factory=dict)
    timer: Counter[str] = field(default_factory=Counter)
    jwks: list[tuple[int, float, int]] = field(default_factory=list)


def run(keys: int, accounts: int, verifies: int, jwks_seconds: float) -> Figures:
    figures = Figures()
    with sandbox_process() as sb, tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        loopback_only(sb.ca_bundle_path)
        sb.admin.set_latency(LATENCY_MS)
        with vault_key_app(sb, Path(tmp)) as (app, settings):
            figures.first_federated = new_keys(app, sb, "federated", 1)[0]  # makes the issuer key
            for kind in KINDS:
                new_keys(app, sb, kind, 2)  # warm the clients and the vault's challenge
                figures.keys[kind] = new_keys(app, sb, kind, keys)
            linked = {
                "certificate": [link_connected_account(app, sb) for _ in range(accounts)],
                "federated": [link_federated_account(app, sb) for _ in range(accounts)],
            }
            figures.verifications, context = verifications(app, sb, settings, linked, verifies)
            figures.timer = timer_run(context, sb)  # both kinds' accounts, in one run
            for clients in (1, 8):
                sb.admin.reset_requests()
                rate = jwks_throughput(app, sb, clients, jwks_seconds)
                figures.jwks.append((clients, rate, counted(sb)["keyvault"]))
    return figures


def report(figures: Figures, accounts: int) -> None:
    def per_run(samples: list[Sample]) -> list[float]:
        totals = Counter[str]()
        for sample in samples:
            totals.update(sample.counts)
        return [totals[t] / len(samples) for t in (*TARGETS, "sign")]

    def row(name: str, samples: list[Sample]) -> list[Any]:
        walls = [s.wall for s in samples]
        return [name, ms(percentile(walls, 50)), ms(percentile(walls, 99)), len(samples),
                *per_run(samples)]  # fmt: skip

    headers = ["", "p50 ms", "p99 ms", "runs", *TARGETS, "KV sign"]
    key_rows = [row(kind, figures.keys[kind]) for kind in KINDS]
    if figures.first_federated is not None:
        key_rows.append(row("federated, the first (makes the issuer key)",
                            [figures.first_federated]))  # fmt: skip
    print_table(
        f"POST /api/keys under vault-key, sandbox latency {LATENCY_MS} ms "
        "(requests per call, counted at the sandbox)",
        headers,
        key_rows,
    )
    verify_rows = []
    for kind in KINDS:
        found = figures.verifications[kind]
        verify_rows.append(row(f"{kind}, cold", found.cold))
        verify_rows.append(row(f"{kind}, warm", found.warm))
    print_table(
        "POST /api/accounts/{id}/verify under vault-key (requests per verification, mean)",
        headers,
        verify_rows,
    )
    timer = figures.timer
    print_table(
        f"A timer run on cached tokens over {accounts} certificate + {accounts} federated accounts",
        ["accounts", *TARGETS, "KV sign"],
        [[2 * accounts, *(timer[t] for t in TARGETS), timer["sign"]]],
    )
    print_table(
        f"GET /api/oidc/jwks throughput (loopback, {JWKS_SECONDS:g} s per row unless --quick)",
        ["clients", "requests/s", "Key Vault requests (goal 0)"],
        [[c, rate, kv] for c, rate, kv in figures.jwks],
    )
    note(
        "keyvault counts every Key Vault request (key creation, reading a public key, sign); "
        "KV sign is the signatures alone; metadata + token are Entra, graph is the one $batch; "
        "the timer's housekeeping lists the vault's keys and secrets once per run"
    )
    note(
        "a cold verification uses a fresh app context (no MSAL app, no metadata, no signer, no "
        "issuer keys in memory); warm ones reuse the app's; the customer's Verify always asks "
        "for a fresh token"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    started = time.monotonic()
    quick = args.quick
    accounts = QUICK_ACCOUNTS if quick else ACCOUNTS
    figures = run(
        QUICK_KEYS if quick else KEYS,
        accounts,
        QUICK_VERIFIES if quick else VERIFIES,
        QUICK_JWKS_SECONDS if quick else JWKS_SECONDS,
    )
    report(figures, accounts)
    print(json.dumps({"benchmark": "federated", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
