"""Runs last: looks through every response the app gave and every log line of the whole run.

No response body, header or log line may hold a private key, an access token or a client
assertion (both are JWTs), nor any token the tests handed to the app.
"""

from __future__ import annotations

import re

from tests.conftest import SEEN

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
PRIVATE_KEY = re.compile(r"PRIVATE KEY|MII[A-Za-z0-9+/]{60,}.*BEGIN", re.DOTALL)


def _texts() -> list[tuple[str, str]]:
    texts = []
    for url, status, headers, body in SEEN.responses:
        where = f"response {status} {url}"
        texts.append((where + " headers", "\n".join(f"{k}: {v}" for k, v in headers.items())))
        texts.append((where + " body", body.decode("utf-8", errors="replace")))
    texts.extend((f"log line {i}", line) for i, line in enumerate(SEEN.log_lines))
    return texts


def test_the_run_saw_enough_to_judge() -> None:
    bodies = b"\n".join(body for _, _, _, body in SEEN.responses)
    assert len(SEEN.responses) > 200, "run the whole suite: this test looks at what it saw"
    assert b'"checks"' in bodies and b"BEGIN CERTIFICATE" in bodies
    assert len(SEEN.log_lines) > 500
    assert SEEN.secrets, "the caller-identity tests hand tokens to the app"


def test_no_private_key_token_or_assertion_anywhere() -> None:
    leaks = []
    for where, text in _texts():
        if "PRIVATE KEY" in text:
            leaks.append(f"{where}: a private key")
        if JWT.search(text):
            leaks.append(f"{where}: a JWT (token or client assertion)")
        for secret in SEEN.secrets:
            if secret in text:
                leaks.append(f"{where}: a token a test sent")
    assert not leaks, "\n".join(leaks[:20])
