"""The local host reads the app as the Functions host does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from localdev.functions import discover, route_prefix, werkzeug_rules
from localdev.ncrontab import Schedule


def test_every_function_folder_is_found_with_its_trigger() -> None:
    found = {spec.name: spec for spec in discover()}
    assert set(found) == {
        "generate_key", "link_account", "verify_account", "onboarding", "health", "health_check",
        "account_history", "account_rotation", "events",
    }  # fmt: skip
    assert found["health_check"].trigger == "timerTrigger"
    assert found["health_check"].schedule == "%HEALTH_CHECK_SCHEDULE%"
    # Every method is listed, so the function answers 405 itself (API.md input rules).
    for name in ("verify_account", "account_history", "events"):
        assert set(found[name].methods) == {
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
        }  # fmt: skip
    assert route_prefix() == "api"


@pytest.mark.parametrize(
    ("template", "rules"),
    [
        ("keys/{keyId?}", ["keys/<keyId>", "keys"]),
        ("accounts/{id}/verify", ["accounts/<id>/verify"]),
        ("items/{id:guid}", ["items/<id>"]),
        ("files/{*rest}", ["files/<path:rest>"]),
        ("health", ["health"]),
    ],
)
def test_route_templates(template: str, rules: list[str]) -> None:
    assert werkzeug_rules(template) == rules


def test_ncrontab_every_six_hours() -> None:
    schedule = Schedule("0 0 */6 * * *")
    after = schedule.next_after(datetime(2026, 11, 26, 7, 30, tzinfo=UTC))
    assert after == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert schedule.matches(datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC))
    assert not schedule.matches(datetime(2026, 11, 26, 18, 0, 1, tzinfo=UTC))


def test_ncrontab_weekdays_and_lists() -> None:
    schedule = Schedule("30 15 9 * * 1-5")  # 09:15:30 on weekdays
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert schedule.next_after(saturday) == datetime(2026, 11, 30, 9, 15, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        Schedule("0 0 * * *")
    with pytest.raises(ValueError):
        Schedule("0 61 * * * *")
