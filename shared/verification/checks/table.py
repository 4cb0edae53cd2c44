"""The decision table: every check of the report is one entry of `STEPS`, in report order.

An entry names the check, the checks it needs, the Graph reads its decider reads, and the
decider. `decide` walks the table in order, and the skip rule exists only here: a check one of
whose needs did not pass is `skipped`, naming that step. `graph_reads` gathers the reads the
entries name, so the verification's one `$batch` follows the table. A new check is one entry
here, its title in `check.TITLES` and its decider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.verification.checks.answers import Answers, GraphRead
from shared.verification.checks.check import FEDERATED_TITLES, TITLES, Check, skipped
from shared.verification.checks.expiry import expiry_check
from shared.verification.checks.federated import federated_check
from shared.verification.checks.grants import (
    MEMBER_OF,
    consent_check,
    directory_role_of,
    least_privilege_of,
)
from shared.verification.checks.graph import (
    ACCESS_REVIEWS,
    ORGANIZATION,
    access_reviews_check,
    directory_read_check,
    organization_check,
    organization_of,
)
from shared.verification.checks.registration import (
    APPLICATION,
    FEDERATED_CREDENTIALS,
    audience_check,
    credentials_check,
)
from shared.verification.checks.tenant import tenant_of
from shared.verification.checks.token_request import application_check, certificate_check


def credential_check(a: Answers) -> Check:
    """The `certificate` step: the account's certificate, or its federated credential."""
    if a.federation is None:
        return certificate_check(a.token, a.key_failure, thumbprint=a.thumbprint)
    return federated_check(
        a.token,
        a.key_failure,
        a.federation,
        application_id=a.application_id,
        download_path=a.download_path,
    )


@dataclass(frozen=True)
class Step:
    id: str
    needs: tuple[str, ...]  # checks that must pass first; else this one is skipped
    decide: Callable[[Answers], Check]
    reads: tuple[GraphRead, ...] = ()  # the Graph reads `decide` reads (`Answers.read`)

    @property
    def title(self) -> str:
        return TITLES[self.id]


STEPS: tuple[Step, ...] = (
    Step(
        "tenant",
        needs=(),
        decide=lambda a: tenant_of(a.metadata, a.token, a.tenant_id),
    ),
    Step(
        "application",
        needs=("tenant",),
        decide=lambda a: application_check(
            a.token, a.key_failure, tenant_id=a.tenant_id, application_id=a.application_id
        ),
    ),
    Step(
        "certificate",
        needs=("application",),
        decide=lambda a: credential_check(a),
    ),
    Step(
        "admin_consent",
        needs=("certificate",),
        decide=lambda a: consent_check(a.claims),
    ),
    Step(
        "directory_role",
        needs=("certificate",),
        decide=directory_role_of,
        reads=(MEMBER_OF,),
    ),
    Step(
        "directory_read",
        needs=("certificate",),
        decide=lambda a: directory_read_check(a.read(ORGANIZATION)),
        reads=(ORGANIZATION,),
    ),
    Step(
        "access_reviews_read",
        needs=("certificate",),
        decide=lambda a: access_reviews_check(a.read(ACCESS_REVIEWS)),
        reads=(ACCESS_REVIEWS,),
    ),
    Step(
        "organization_match",
        needs=("directory_read",),
        decide=lambda a: organization_check(
            a.organization_name, organization_of(a.read(ORGANIZATION))
        ),
        reads=(ORGANIZATION,),
    ),
    Step(
        "least_privilege",
        needs=("certificate",),
        decide=least_privilege_of,
        reads=(MEMBER_OF,),
    ),
    Step(
        "certificate_expiry",
        needs=(),
        decide=lambda a: expiry_check(a.certificate_not_after, a.now, a.warn_days, a.renewal),
    ),
    Step(
        "app_audience",
        needs=("certificate",),
        decide=lambda a: audience_check(a.read(APPLICATION), a.application_id),
        reads=(APPLICATION,),
    ),
    Step(
        "app_credentials",
        needs=("certificate",),
        decide=lambda a: credentials_check(
            a.read(APPLICATION), a.owners, a.now, a.read(FEDERATED_CREDENTIALS)
        ),
        reads=(APPLICATION, FEDERATED_CREDENTIALS),
    ),
)
CHECK_ORDER: tuple[str, ...] = tuple(s.id for s in STEPS)
NEEDS: dict[str, tuple[str, ...]] = {s.id: s.needs for s in STEPS}


def graph_reads(claims: dict[str, Any]) -> tuple[GraphRead, ...]:
    """The Graph reads of one verification, with a token of these claims: every read a step
    names (and the token calls for), each once, in table order."""
    reads: dict[str, GraphRead] = {}
    for step in STEPS:
        for read in step.reads:
            if read.name not in reads and read.when(claims):
                reads[read.name] = read
    return tuple(reads.values())


def blocker_of(step: Step, results: dict[str, Check]) -> str | None:
    """The first check `step` needs that did not pass; a check skipped because of `step`
    itself (the key is read before the token is asked for) does not block it."""
    for need in step.needs:
        done = results[need]
        if done.status != "pass" and done.blocked_by != step.id:
            return need
    return None


def decide(answers: Answers) -> list[Check]:
    """Every check, in table order: skipped when a check it needs did not pass, else decided."""
    results: dict[str, Check] = {}
    for step in STEPS:
        blocker = blocker_of(step, results)
        results[step.id] = skipped(step.id, blocker) if blocker else step.decide(answers)
    if answers.federation is not None:  # the titles name the account's kind of credential
        for check_id, title in FEDERATED_TITLES.items():
            results[check_id] = replace(results[check_id], title=title)
    return list(results.values())
