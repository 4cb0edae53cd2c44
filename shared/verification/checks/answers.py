"""What one verification gathered, as the deciders read it: the tenant's answers, the account
facts they are compared with, and the Graph reads the checks declare.

A check that needs a Graph read names it (a `GraphRead`) in its table entry; the verification
makes every read the table names in one `$batch` and hands the answers over by read name
(`Answers.read`), so a new read needs nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core import app_registration as registrations
from shared.core.answers import GraphAnswer, MetadataAnswer, TokenAnswer
from shared.core.federation import AUDIENCE, Federation

# What a decider is handed for a read that was not made (no token) or did not come back.
NOT_READ = GraphAnswer(status=None, transient=True, message="not read")


def _always(claims: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class GraphRead:
    """One Graph GET that checks need, made once per verification however many steps name it.

    `path` is relative to `{graph}/v1.0` and may name `{application_id}`; `name` is its
    sub-request id in the `$batch` and the key its answer is handed over by. `every_page`: a
    collection whose further pages are read with plain GETs after the batch. `when`: whether
    this verification needs it, judged from the token's claims."""

    name: str
    path: str
    every_page: bool = False
    when: Callable[[dict[str, Any]], bool] = _always

    def url(self, application_id: str) -> str:
        return self.path.format(application_id=application_id)


# The answers of one verification's Graph reads, by read name; a read not made is absent.
GraphAnswers = Mapping[str, GraphAnswer]


@dataclass(frozen=True)
class Renewal:
    """A rotation awaiting its upload, and what Entra said to a token request with its new key
    in this verification (None: not asked, its certificate has expired)."""

    key_id: str
    thumbprint: str  # "" for a new federated credential
    not_after: datetime | None  # None for a new federated credential: it never expires
    automatic: bool = False
    add_key: str | None = None  # automatic renewal's addKey: pending | done | refused
    detail: str | None = None  # the rotation's own detail (Graph's words on a refusal)
    answer: TokenAnswer | None = None
    key_failure: str | None = None
    replaces: str = ""  # the thumbprint of the certificate this renewal replaces
    federation: Federation | None = None  # the new key is this federated credential

    @property
    def named(self) -> str:
        """The new credential as the customer knows it."""
        if self.federation is not None:
            return f"federated credential {self.federation.subject}"
        return f"certificate {self.thumbprint}"

    @property
    def accepted(self) -> bool:
        return self.answer is not None and self.answer.access_token is not None


@dataclass(frozen=True)
class Answers:
    """Everything one verification gathered, and the account facts the checks compare with."""

    tenant_id: str
    application_id: str
    thumbprint: str  # "" for a federated credential
    organization_name: str | None
    certificate_not_after: datetime | None  # None for a federated credential
    now: datetime
    warn_days: int
    metadata: MetadataAnswer
    token: TokenAnswer | None = None  # None: not asked (tenant unknown, or the key unreadable)
    key_failure: str | None = None  # unavailable | missing | unusable (see key_read_checks)
    graph: GraphAnswers = field(default_factory=dict)
    # Certificates a rotation brings: listed as `rotation` / `previous` in appRegistration.
    rotation_thumbprints: frozenset[str] = frozenset()
    previous_thumbprints: frozenset[str] = frozenset()
    renewal: Renewal | None = None  # a rotation awaiting its upload
    switched_to: str | None = None  # Entra accepted the rotation's key: the checks are its
    download_path: str = ""  # where the account's certificate (or credential JSON) downloads
    federation: Federation | None = None  # the account signs in with this federated credential
    # Subjects of our federated credentials a rotation brings (see the thumbprints above).
    rotation_subjects: frozenset[str] = frozenset()
    previous_subjects: frozenset[str] = frozenset()
    issuer: str = ""  # OIDC_ISSUER: the issuer of every federated credential of ours

    @property
    def claims(self) -> dict[str, Any]:
        return self.token.claims if self.token and self.token.access_token else {}

    @property
    def has_token(self) -> bool:
        return self.token is not None and self.token.access_token is not None

    @property
    def owners(self) -> registrations.Owners:
        return registrations.Owners(
            self.thumbprint,
            self.rotation_thumbprints,
            self.previous_thumbprints,
            issuer=self.issuer,
            audience=AUDIENCE,
            subject=self.federation.subject if self.federation else "",
            rotation_subjects=self.rotation_subjects,
            previous_subjects=self.previous_subjects,
        )

    def read(self, read: GraphRead) -> GraphAnswer:
        """The answer to a Graph read; `NOT_READ` when it was not made."""
        answer = self.graph.get(read.name)
        return answer if answer is not None else NOT_READ

    def answered(self, read: GraphRead) -> GraphAnswer | None:
        """The answer to a Graph read when it succeeded, else None."""
        answer = self.graph.get(read.name)
        return answer if answer is not None and answer.ok else None
