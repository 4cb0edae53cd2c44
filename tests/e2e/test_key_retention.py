"""A key no account uses says when it will be deleted (`expiresAt`, from
UNLINKED_KEY_RETENTION_DAYS) and is deleted then; a key in use says `null` and stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.timer import housekeeping
from tests.conftest import RunningApp

BODY = {
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Prod",
}
OTHER_APP = "22222222-3333-4444-5555-666666666666"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_expires_at_follows_the_retention_setting_until_an_account_uses_the_key(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app({"UNLINKED_KEY_RETENTION_DAYS": "3"})
    made = app.http.post(app.api("/keys"), json=BODY)
    assert made.status_code == 201
    key = made.json()
    assert _time(key["expiresAt"]) - _time(key["createdAt"]) == timedelta(days=3)
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).json()["expiresAt"] == key["expiresAt"]

    link = {**BODY, "keyId": key["keyId"]}
    assert app.http.post(app.api("/accounts"), json=link).status_code == 201
    used = app.http.get(app.api(f"/keys/{key['keyId']}")).json()
    assert used["accountId"] is not None and used["expiresAt"] is None

    # Housekeeping when the unused key's time has come: the unused one goes, the used one stays.
    unused = app.http.post(app.api("/keys"), json={**BODY, "applicationId": OTHER_APP}).json()
    summary = housekeeping.run(app.context, _time(unused["expiresAt"]) + timedelta(seconds=1))
    assert summary.keys_removed == 1
    assert app.http.get(app.api(f"/keys/{unused['keyId']}")).status_code == 404
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 200
    assert unused["keyId"] not in {k.key_id for k in app.context.keys.list()}


def test_the_default_retention_is_seven_days(start_app: Callable[..., RunningApp]) -> None:
    app = start_app()
    key = app.http.post(app.api("/keys"), json=BODY).json()
    assert _time(key["expiresAt"]) - _time(key["createdAt"]) == timedelta(days=7)
    summary = housekeeping.run(app.context, _time(key["expiresAt"]) - timedelta(seconds=1))
    assert summary.keys_removed == 0
    assert app.http.get(app.api(f"/keys/{key['keyId']}")).status_code == 200
