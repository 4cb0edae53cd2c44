"""In Azure without WEBSITE_HOSTNAME and without OIDC_ISSUER the app starts with no issuer
(settings.oidc_issuer == ""): it publishes no documents and makes no federated credential,
rather than one naming an issuer nobody can reach."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shared.app import oidc
from shared.app.bootstrap import build_context
from shared.core.errors import ConfigurationError, NotFound
from shared.core.settings import load_settings
from shared.linking import keys

BODY = {
    "kind": "federated",
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "applicationId": "11111111-2222-3333-4444-555555555555",
    "displayName": "Contoso",
}


def test_without_an_issuer_nothing_is_published_and_no_federated_key_is_made(
    tmp_path: Path,
) -> None:
    settings = load_settings({"AUTH_MODE": "local", "LOCAL_STATE_DIR": str(tmp_path)})
    ctx = build_context(replace(settings, oidc_issuer=""))
    for name in (oidc.DISCOVERY, oidc.JWKS):
        with pytest.raises(NotFound):
            oidc.document(ctx, name)
    with pytest.raises(ConfigurationError, match="OIDC_ISSUER"):
        keys.create_key(ctx, "owner", dict(BODY))
    assert list(ctx.accounts.list_keys()) == [] and list(ctx.keys.list()) == []
    certificate = keys.create_key(ctx, "owner", {k: v for k, v in BODY.items() if k != "kind"})
    assert certificate.kind == "certificate"  # certificates do not need the issuer
