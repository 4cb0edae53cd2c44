"""The OpenID issuer through Microsoft's worker library: both documents, HEAD, the empty
catch-all, and the issuer named after the host's own URL (API.md, "The issuer")."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests

from tests.conftest import RunningApp

DISCOVERY = "/oidc/.well-known/openid-configuration"


@pytest.fixture
def app(start_worker_app: Callable[..., RunningApp]) -> RunningApp:
    return start_worker_app()


def test_discovery_and_jwks_answer_through_the_worker(app: RunningApp) -> None:
    discovery = requests.get(app.api(DISCOVERY), timeout=30)
    assert discovery.status_code == 200
    assert discovery.headers["Content-Type"].split(";")[0] == "application/json"
    assert re.fullmatch(r"public, max-age=\d+", discovery.headers["Cache-Control"])
    issuer = f"{app.url}/api/oidc"
    assert discovery.json() == {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    jwks = requests.get(discovery.json()["jwks_uri"], timeout=30)
    assert jwks.status_code == 200 and jwks.json() == {"keys": []}  # no federated credential yet
    assert jwks.headers["Cache-Control"] == discovery.headers["Cache-Control"]


def test_head_and_the_empty_catch_all_through_the_worker(app: RunningApp) -> None:
    head = requests.head(app.api(DISCOVERY), timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"].split(";")[0] == "application/json"
    # `oidc/{*document}` also matches `/api/oidc` (ASP.NET Core's catch-all takes the empty
    # string): the function answers it, with a problem, not the host's bare 404.
    bare = requests.get(app.api("/oidc"), timeout=30)
    assert bare.status_code == 404
    assert bare.headers["Content-Type"] == "application/problem+json"
