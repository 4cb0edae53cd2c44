"""Verifications racing the switch to a renewed key: threads of several app instances, and two
processes, on SQLite and on Table Storage (Azurite). Exactly one switch, no lost update, and no
key left pointing at nothing."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.app.bootstrap import build_context
from shared.core.model import Actor
from shared.core.settings import load_settings
from shared.linking.history import acting_as
from shared.verification.verify import verify_account
from tests.conftest import RunningApp
from tests.e2e.customer import Customer
from tests.e2e.test_rotation import events_of, private_key_exists, start, table_settings, upload

OWNER = "local-dev"
INSTANCES = 4
ROUNDS = 3


def settings_of(sandbox: Any, state_dir: str, backend: dict[str, str]) -> dict[str, str]:
    return {
        "AUTH_MODE": "local",
        "LOCAL_STATE_DIR": state_dir,
        "ENTRA_AUTHORITY_HOST": sandbox.base_url,
        "GRAPH_ENDPOINT": sandbox.base_url,
        **backend,
    }


@pytest.fixture(params=["sqlite", "table"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    return table_settings(request.getfixturevalue("azurite"))


@pytest.fixture
def env(sandbox: Any, tmp_path: Any, backend: dict[str, str]) -> dict[str, str]:
    return settings_of(sandbox, str(tmp_path / "state"), backend)


@pytest.fixture
def app(sandboxed_app: Callable[..., RunningApp], env: dict[str, str]) -> RunningApp:
    return sandboxed_app(env)


def uploaded_rotation(app: RunningApp, sandbox: Any) -> tuple[Customer, dict[str, Any], str]:
    """A connected account whose renewal certificate is uploaded but not yet switched to."""
    customer = Customer(app, sandbox).link_all_the_way()
    assert customer.verify()["status"] == "connected"
    old_key = customer.current()["keyId"]
    new_key = start(customer)["key"]
    upload(customer, new_key["keyId"])
    return customer, new_key, old_key


def assert_switched_once(
    app: RunningApp, customer: Customer, new_key: dict[str, Any], old_key: str
) -> None:
    account = customer.current()
    assert account["keyId"] == new_key["keyId"]
    assert account["thumbprint"] == new_key["thumbprint"]
    assert account["rotation"]["status"] == "completed"
    assert account["status"] == "connected"
    types = [e["type"] for e in events_of(customer)]
    assert types.count("rotation_completed") == 1
    # Both keys are bound to the account and usable: the new one as its key, the old one for
    # the retirement window. Neither record is missing or being deleted.
    for key_id in (new_key["keyId"], old_key):
        record = app.context.accounts.get_key(OWNER, key_id)
        assert record is not None and record.account_id == account["id"] and not record.deleting
        assert private_key_exists(app, key_id)
    # The stored report is one that started last, and it speaks for the new key.
    assert account["lastVerification"]["rotation"]["status"] == "completed"


def test_instances_verifying_at_the_switch_switch_once(app: RunningApp, sandbox: Any) -> None:
    customer, new_key, old_key = uploaded_rotation(app, sandbox)
    instances = [build_context(app.context.settings) for _ in range(INSTANCES)]
    barrier = threading.Barrier(INSTANCES)

    def verify(instance: Any) -> list[str]:
        barrier.wait()
        with acting_as(Actor("user", "racer")):
            return [
                verify_account(instance, OWNER, customer.account["id"])["status"]
                for _ in range(ROUNDS)
            ]

    with ThreadPoolExecutor(max_workers=INSTANCES) as pool:
        results = list(pool.map(verify, instances))
    assert all(status == "connected" for statuses in results for status in statuses)
    assert_switched_once(app, customer, new_key, old_key)


def _verify_in_process(env: dict[str, str], ca_bundle: str, account_id: str, barrier: Any) -> None:
    os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle
    ctx = build_context(load_settings(env))
    barrier.wait(timeout=60)
    for _ in range(ROUNDS):
        report = verify_account(ctx, OWNER, account_id)
        if report["status"] != "connected":
            raise SystemExit(f"status {report['status']}")


def test_two_processes_verifying_at_the_switch_switch_once(
    app: RunningApp, sandbox: Any, env: dict[str, str]
) -> None:
    customer, new_key, old_key = uploaded_rotation(app, sandbox)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(
            target=_verify_in_process,
            args=(env, sandbox.ca_bundle_path, customer.account["id"], barrier),
        )
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert_switched_once(app, customer, new_key, old_key)
