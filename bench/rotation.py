"""What a certificate renewal costs the timer in outbound requests (issue 13).

A few accounts, linked the way a customer links them (bench.verify.link_connected_account:
register the app, POST /api/keys, upload the certificate, POST /api/accounts), embedded stores,
the sandbox at no latency. The timer (`health_check.run`, HEALTH_CHECK_INTERVAL_HOURS=0 and
`bench._support.settled_now()` as its clock, so every account is due at every run and none
twice) runs once to warm up, then the requests of each warm run are counted at the sandbox by
target (metadata, token, graph, keyvault) and divided by the accounts it verified:

- without a rotation;
- while a manual rotation is open and not accepted (POST /rotation; the certificate not
  uploaded): goal +1 token request (the new key's, refused by Entra);
- the run that switches (the new certificate uploaded beforehand);
- after it: goal no extra request.

Then one automatic renewal end to end: an account with `certificateRenewal: automatic` whose
certificate has 20 days left (inside CERT_EXPIRY_WARNING_DAYS), a tenant whose Entra accepts a
new certificate only `certificatePropagationSeconds` after it was added. The timer starts the
rotation, adds the certificate with Graph addKey, verifies until Entra accepts it and switches;
after KEY_RETIREMENT_DAYS (the clock moved on) it removes the old certificate with removeKey.
Figures: the timer runs it took, the seconds, and the requests of each run.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from bench._support import (
    RunningApp,
    SandboxProcess,
    app_settings,
    arguments,
    local_host,
    loopback_only,
    note,
    print_table,
    quiet_logging,
    sandbox_process,
    settled_now,
)
from bench.verify import link_connected_account
from shared.support.timefmt import utc_now
from shared.timer import run as health_check

ACCOUNTS, QUICK_ACCOUNTS = 5, 2
PROPAGATION_SECONDS, QUICK_PROPAGATION_SECONDS = 10, 3
MAX_RUNS = 60
TARGETS = ("metadata", "token", "graph", "keyvault")


def client() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def timer_run(app: RunningApp, sb: SandboxProcess, **options: Any) -> tuple[Counter[str], int]:
    """One timer run: the requests the sandbox counted, by target, and the accounts verified."""
    clock = options.pop("now", None) or settled_now()
    sb.admin.reset_requests()
    summary = health_check.run(app.context, now=clock, **options)
    if summary.failures:
        raise RuntimeError(f"{summary.failures} verifications failed")
    counts = Counter({k: v for k, v in sb.admin.requests()["counts"].items() if v})
    return counts, summary.checked


def account(app: RunningApp, account_id: str) -> dict[str, Any]:
    response = client().get(app.api(f"/accounts/{account_id}"), timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def manual_rotation(app: RunningApp, sb: SandboxProcess, accounts: int) -> list[list[Any]]:
    http = client()
    ids = [link_connected_account(app, sb) for _ in range(accounts)]
    rows: list[list[Any]] = []

    def measured(name: str) -> None:
        counts, checked = timer_run(app, sb)
        rows.append(
            [name, checked, *(counts[t] / max(checked, 1) for t in TARGETS),
             sum(counts.values()) / max(checked, 1)]
        )  # fmt: skip

    timer_run(app, sb)  # warm: MSAL applications, metadata, tokens
    measured("no rotation")
    keys = {}
    for account_id in ids:
        started = http.post(app.api(f"/accounts/{account_id}/rotation"), json={}, timeout=60)
        if started.status_code not in (200, 201):
            raise RuntimeError(f"POST /rotation answered {started.status_code}: {started.text}")
        keys[account_id] = started.json()["key"]["keyId"]
    measured("rotation open, not accepted (1st run)")
    measured("rotation open, not accepted (2nd run)")
    for account_id, key_id in keys.items():
        current = account(app, account_id)
        cer = http.get(app.api(f"/keys/{key_id}"), params={"format": "cer"}, timeout=30)
        sb.admin.upload_certificate(current["tenantId"], current["applicationId"], cer.content)
    measured("the switch (new certificate uploaded)")
    switched = sum(account(app, i)["keyId"] == keys[i] for i in ids)
    if switched != len(ids):
        raise RuntimeError(f"only {switched} of {len(ids)} accounts switched")
    measured("after the switch (1st run)")
    measured("after the switch (2nd run)")
    return rows


def automatic_renewal(app: RunningApp, sb: SandboxProcess, propagation: int) -> list[list[Any]]:
    """One account renewed by the app itself; a row per timer run until the switch, then the
    retirement run."""
    http = client()
    admin = sb.admin
    domain = f"fabrikam{uuid.uuid4().hex[:6]}.onmicrosoft.com"
    tenant_id = admin.create_tenant("Fabrikam", domains=[domain])["tenantId"]
    app_id = admin.create_application(tenant_id, "Governance portal")["appId"]
    admin.set_permissions(tenant_id, app_id, ["AccessReview.Read.All"])
    admin.set_directory_roles(tenant_id, app_id, ["Global Reader"])
    ids = {"tenantId": tenant_id, "applicationId": app_id}
    key = http.post(
        app.api("/keys"), json={**ids, "displayName": "Auto", "validityDays": 20}, timeout=60
    ).json()
    cer = http.get(app.api(f"/keys/{key['keyId']}"), params={"format": "cer"}, timeout=30)
    admin.upload_certificate(tenant_id, app_id, cer.content)
    body = {**ids, "displayName": "Auto", "organizationName": domain, "keyId": key["keyId"],
            "certificateRenewal": "automatic"}  # fmt: skip
    linked = http.post(app.api("/accounts"), json=body, timeout=60)
    if linked.status_code != 201:
        raise RuntimeError(f"POST /api/accounts answered {linked.status_code}: {linked.text}")
    account_id = linked.json()["id"]
    verified = http.post(app.api(f"/accounts/{account_id}/verify"), timeout=60)
    if verified.status_code != 200 or verified.json()["status"] != "connected":
        raise RuntimeError(f"verification answered {verified.status_code}: {verified.text[:300]}")
    # From here on Entra takes a while to accept a new certificate (the current one's token is
    # cached from the verification above, as it would be on a real timer's instance).
    admin.update_tenant(tenant_id, certificate_propagation_seconds=propagation)

    rows: list[list[Any]] = []
    started = time.monotonic()
    for run in range(1, MAX_RUNS + 1):
        counts, checked = timer_run(app, sb)
        now = account(app, account_id)
        rotation = now["rotation"] or {}
        rows.append(
            [f"run {run}", round(time.monotonic() - started, 1), checked,
             *(counts[t] for t in TARGETS), rotation.get("status", "-"),
             (rotation.get("appRegistration") or {}).get("addKey", "-"), now["status"],
             "new" if now["keyId"] != key["keyId"] else "old"]
        )  # fmt: skip
        if rotation.get("status") == "completed":
            break
    else:
        raise RuntimeError(f"no switch after {MAX_RUNS} timer runs: {rows[:3]} {rows[-1]}")
    later = utc_now() + timedelta(days=app.context.settings.key_retirement_days, minutes=1)
    counts, checked = timer_run(app, sb, now=later)
    now = account(app, account_id)
    rotation = now["rotation"]
    left = {
        c["thumbprint"].upper() for c in admin.get_application(tenant_id, app_id)["certificates"]
    }
    rows.append(
        ["retirement (clock + KEY_RETIREMENT_DAYS)", "-", checked,
         *(counts[t] for t in TARGETS), rotation["status"],
         f"removeKey {rotation['appRegistration'].get('removeKey')}", now["status"],
         f"{len(left)} cert(s) on the app"]
    )  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(__doc__, argv)
    quiet_logging()
    loopback_only()
    started = time.monotonic()
    accounts = QUICK_ACCOUNTS if args.quick else ACCOUNTS
    propagation = QUICK_PROPAGATION_SECONDS if args.quick else PROPAGATION_SECONDS
    with sandbox_process() as sb, tempfile.TemporaryDirectory(prefix="bench-rotation-") as tmp:
        loopback_only(sb.ca_bundle_path)
        with local_host(app_settings(Path(tmp) / "manual", sb.app_settings())) as app:
            manual = manual_rotation(app, sb, accounts)
        with local_host(app_settings(Path(tmp) / "automatic", sb.app_settings())) as app:
            automatic = automatic_renewal(app, sb, propagation)
    print_table(
        f"Outbound requests per verification, warm timer runs over {accounts} accounts "
        "(counted at the sandbox; mean per account)",
        ["run", "verified", *TARGETS, "total"],
        manual,
    )
    baseline = manual[0][-1]
    for row in manual[1:]:
        note(f"{row[0]}: {row[-1] - baseline:+.2f} requests per verification vs no rotation")
    print_table(
        f"Automatic renewal end to end: certificate 20 days from expiry, Entra accepts a new "
        f"certificate {propagation} s after it was added (requests of the whole run)",
        ["timer run", "s since first", "verified", *TARGETS, "rotation", "addKey", "status",
         "signing key"],
        automatic,
    )  # fmt: skip
    switch_runs = len(automatic) - 1
    note(
        f"switched at timer run {switch_runs} (each run waits for the next whole second, so runs "
        "are about a second apart; the real timer runs every 10 minutes, so it switches at the "
        "first run after Entra's propagation)"
    )
    note(
        "graph in the first run: the verification's $batch and addKey (the application's object "
        "id comes from the last report); retirement: the $batch, the application's "
        "keyCredentials read (the old certificate's keyId) and removeKey"
    )
    print(json.dumps({"benchmark": "rotation", "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
