"""Talks to a customer's tenant: OpenID metadata, the client-credentials token (MSAL), Graph reads.

Answers come back as data (what Entra or Graph said, or that it could not be reached), never as
exceptions, so verification can turn each into a check. Every call goes through one injected
`requests.Session` (timeouts, bounded retries honouring Retry-After, REQUESTS_CA_BUNDLE).

MSAL application objects are kept per account and key in a bounded LRU, so a warm verification
skips OpenID discovery; tenant metadata fetched for the `tenant` check is handed to MSAL from the
same cache, so discovery is never fetched twice.

What MSAL raises is judged here too: a key that could not be read is handed back to the caller
(`KeyUnavailable`, the key store's own error inside), anything else MSAL did not expect becomes an
answer marked `unexpected`, never mistaken for a certificate problem.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import msal
import requests

from shared.adapters.http.outbound import json_object
from shared.adapters.tenant import graph_batch
from shared.adapters.tenant.assertion import KeyUnavailable
from shared.adapters.tenant.msal_http import WELL_KNOWN, MetadataCache, MsalHttp, TransientHttpError
from shared.core.answers import (
    GraphAnswer,
    MetadataAnswer,
    TokenAnswer,
    aadsts_number,
    first_line,
    graph_answer,
)
from shared.support import telemetry as t

GRAPH_MAX_PAGES = 10

log = logging.getLogger("m365link.tenant_client")


@dataclass
class _CachedApp:
    app: msal.ConfidentialClientApplication
    http_cache: dict[str, Any]


class TenantClient:
    # ~25 KB per warm application object: 4,096 fit in about 100 MB, so a fleet of thousands of
    # accounts is re-verified from warm objects and cached tokens (one Graph batch each).
    def __init__(self, session: requests.Session, *, max_apps: int = 4096) -> None:
        self._session = session
        self._metadata = MetadataCache()
        self._http = MsalHttp(session, self._metadata)
        self._apps: OrderedDict[tuple[str, ...], _CachedApp] = OrderedDict()
        self._max_apps = max_apps
        self._lock = threading.Lock()

    # --- tenant metadata ---------------------------------------------------------------------
    def metadata(self, login_base: str, tenant_id: str) -> MetadataAnswer:
        url = f"{login_base}/{tenant_id}{WELL_KNOWN}"
        try:
            response = self._http.get(url)
        except requests.RequestException as exc:
            return MetadataAnswer(transient=True, description=type(exc).__name__)
        if response.status_code == 200:
            try:
                document = response.json()
            except ValueError:
                return MetadataAnswer(status=200, transient=True, description="invalid JSON")
            if not isinstance(document, dict):
                return MetadataAnswer(status=200, transient=True, description="not a JSON object")
            return MetadataAnswer(document=document, status=200)
        if response.status_code == 429 or response.status_code >= 500:
            return MetadataAnswer(status=response.status_code, transient=True)
        body = json_object(response)
        return MetadataAnswer(
            status=response.status_code,
            error_code=aadsts_number(body.get("error_codes")),
            description=first_line(body.get("error_description")),
        )

    # --- token -------------------------------------------------------------------------------
    def token(
        self,
        *,
        cache_key: tuple[str, ...],
        client_id: str,
        authority: str,
        scope: str,
        assertion: Callable[[dict[str, Any]], str],
        fresh: bool,
    ) -> TokenAnswer:
        """An app-only token. `fresh` drops cached tokens and MSAL's HTTP cache first, so a
        certificate uploaded or a consent granted a minute ago is seen."""
        try:
            cached = self._app(cache_key, client_id, authority, assertion)
            if fresh:
                cached.app.remove_tokens_for_client()
                cached.http_cache.clear()
            result = cached.app.acquire_token_for_client(scopes=[scope])
        except KeyUnavailable:
            raise  # the key store's failure, for the caller to judge
        except TransientHttpError as exc:
            return _counted(TokenAnswer(transient=True, status=exc.status))
        except requests.RequestException as exc:
            return _counted(TokenAnswer(transient=True, description=type(exc).__name__))
        except ValueError as exc:  # MSAL's way to say an answer made no sense to it
            return _counted(
                TokenAnswer(
                    error="unexpected_answer", unexpected=True, description=first_line(str(exc))
                )
            )
        except Exception as exc:  # MSAL is a black box: never a 500 for what it raises
            log.warning("token request failed inside MSAL reason=%s", type(exc).__name__)
            return _counted(
                TokenAnswer(
                    error="unexpected_answer", unexpected=True, description=type(exc).__name__
                )
            )
        if "access_token" in result:
            token = str(result["access_token"])
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                claims = {}
            answer = TokenAnswer(access_token=token, claims=claims)
            # MSAL marks a token it answered from its cache: no request, nothing counted.
            return answer if result.get("token_source") == "cache" else _counted(answer)
        error = result.get("error")
        return _counted(
            TokenAnswer(
                error=str(error) if error else None,
                error_code=aadsts_number(result.get("error_codes")),
                description=first_line(str(result.get("error_description") or "")),
                unexpected=not error,
            )
        )

    def _app(
        self,
        key: tuple[str, ...],
        client_id: str,
        authority: str,
        assertion: Callable[[dict[str, Any]], str],
    ) -> _CachedApp:
        with self._lock:
            cached = self._apps.get(key)
            if cached is not None:
                self._apps.move_to_end(key)
                return cached
        http_cache: dict[str, Any] = {}
        app = msal.ConfidentialClientApplication(
            client_id,
            # MSAL's documented callable: it signs through the key store when a token is
            # requested; the application object holds no key material.
            client_credential={"client_assertion": assertion},
            authority=authority,
            instance_discovery=False,  # the authority is a tenant of a known cloud
            http_client=self._http,
            http_cache=http_cache,
        )
        cached = _CachedApp(app, http_cache)
        with self._lock:
            self._apps[key] = cached
            self._apps.move_to_end(key)
            while len(self._apps) > self._max_apps:
                self._apps.popitem(last=False)
        return cached

    def forget_account(self, account_id: str) -> None:
        """Drop an unlinked account's application objects (and the tokens they cache)."""
        with self._lock:
            for key in [k for k in self._apps if k[0] == account_id]:
                del self._apps[key]

    @property
    def warm_apps(self) -> int:
        return len(self._apps)

    # --- Graph -------------------------------------------------------------------------------
    def graph_get(self, url: str, token: str) -> GraphAnswer:
        try:
            response = self._session.get(
                url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
        except requests.RequestException as exc:
            return GraphAnswer(status=None, transient=True, message=type(exc).__name__)
        return graph_answer(response.status_code, json_object(response))

    def graph_post(self, url: str, token: str, body: dict[str, Any]) -> GraphAnswer:
        """A Graph write (the app's own addKey/removeKey), answered like `graph_get`: a 204's
        empty body is `{}`. The session retries POSTs on 429/5xx, so callers judge a write that
        may have landed on an earlier attempt."""
        try:
            response = self._session.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except requests.RequestException as exc:
            return GraphAnswer(status=None, transient=True, message=type(exc).__name__)
        return graph_answer(response.status_code, json_object(response))

    def graph_batch(
        self, graph: str, token: str, urls: Mapping[str, str]
    ) -> dict[str, GraphAnswer]:
        """GET every `urls` value (relative to `{graph}/v1.0`) in one `$batch`; the answers by
        key. A sub-request answered 429/5xx is retried alone (see
        `shared.adapters.tenant.graph_batch`)."""
        return graph_answers(graph_batch.send(self._session, graph, token, urls))

    def graph_rest_of(
        self, first: GraphAnswer, url: str, token: str, *, max_pages: int = GRAPH_MAX_PAGES
    ) -> GraphAnswer:
        """A Graph collection whose first page (`first`, read from `url`) is in hand, every
        page: `@odata.nextLink` is followed with plain GETs up to `max_pages` pages in all, and
        only on the host of `url` (the bearer token never goes anywhere else). An incomplete
        listing is a transient failure whose body holds the entries read so far."""
        origin = _origin(url)
        values: list[Any] = []
        answer = first
        for page_number in range(1, max_pages + 1):
            if not answer.ok:
                return GraphAnswer(
                    answer.status, {"value": values}, answer.code, answer.message, answer.transient
                )
            page = answer.body or {}
            values.extend(v for v in page.get("value") or [] if isinstance(v, dict))
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return GraphAnswer(answer.status, {"value": values})
            if not isinstance(next_link, str) or _origin(next_link) != origin:
                return GraphAnswer(
                    None,
                    {"value": values},
                    message="Graph's next-page link points at another host; not followed",
                    transient=True,
                )
            if page_number < max_pages:
                answer = self.graph_get(next_link, token)
        return GraphAnswer(
            None,
            {"value": values},
            message=f"Graph's listing has more than {max_pages} pages; not read to the end",
            transient=True,
        )


def _counted(answer: TokenAnswer) -> TokenAnswer:
    """A token request Entra was asked, in the metrics by outcome: `issued`, `refused` (Entra
    answered an error), `unreachable` (no answer, a 429 or a 5xx: try later), `unexpected`."""
    if answer.access_token:
        outcome = "issued"
    elif answer.transient:
        outcome = "unreachable"
    elif answer.unexpected:
        outcome = "unexpected"
    else:
        outcome = "refused"
    t.counter(t.TOKEN_REQUESTS, description="token requests to Entra by outcome").add(
        1, {t.SERVICE: "entra", t.OUTCOME: outcome}
    )
    return answer


def graph_answers(batch: Mapping[str, graph_batch.SubResponse]) -> dict[str, GraphAnswer]:
    """A `$batch`'s sub-responses as data; one without an HTTP answer is a transient failure."""
    return {
        name: graph_answer(sub.status, sub.body)
        if sub.status is not None
        else GraphAnswer(status=None, transient=True, message=sub.note)
        for name, sub in batch.items()
    }


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port, the default port spelled out, so `:443` is the same host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme, -1)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port
