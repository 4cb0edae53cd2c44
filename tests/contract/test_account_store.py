"""The account store's contract, run against SQLite and against Table Storage on Azurite."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.accountstore import AccountStore, KeyTaken, PairTaken, VersionConflict
from shared.app.http_edge import problem_response
from shared.core.model import Account, KeyRecord

T0 = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def every_account(store: AccountStore, owner: str) -> list[Account]:
    """The owner's accounts in API order, read the way the API reads them: page after page."""
    found: list[Account] = []
    after: str | None = None
    while True:
        page = store.page_accounts(owner, 1000, after)
        found.extend(page.items)
        if page.next is None:
            return found
        after = page.next


def key(owner: str = "owner-a", tenant: str = TENANT, app: str | None = None) -> KeyRecord:
    return KeyRecord(
        key_id=str(uuid.uuid4()),
        owner=owner,
        tenant_id=tenant,
        application_id=app or str(uuid.uuid4()),
        display_name="Prod",
        thumbprint="A" * 40,
        thumbprint_sha256="B" * 64,
        subject="CN=Prod",
        not_before=T0,
        not_after=T0 + timedelta(days=365),
        key_size=2048,
        certificate_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        created_at=T0,
    )


def account_for(k: KeyRecord, created: datetime = T0, account_id: str | None = None) -> Account:
    return Account(
        id=account_id or str(uuid.uuid4()),
        owner=k.owner,
        display_name="Prod",
        tenant_id=k.tenant_id,
        application_id=k.application_id,
        organization_name="contoso.onmicrosoft.com",
        cloud="auto",
        key_id=k.key_id,
        thumbprint=k.thumbprint,
        certificate_not_after=k.not_after,
        status="pending",
        created_at=created,
        updated_at=created,
    )


def linked(store: AccountStore, owner: str = "owner-a", **kwargs: object) -> Account:
    k = key(owner)
    store.add_key(k)
    account = account_for(k, **kwargs)  # type: ignore[arg-type]
    store.link(account)
    return account


def test_key_records_round_trip_and_belong_to_their_owner(store: AccountStore) -> None:
    k = key()
    store.add_key(k)
    assert store.get_key("owner-a", k.key_id) == k
    assert store.get_key("owner-b", k.key_id) is None
    assert store.get_key("owner-a", str(uuid.uuid4())) is None
    store.delete_key("owner-a", k.key_id)
    assert store.get_key("owner-a", k.key_id) is None
    store.delete_key("owner-a", k.key_id)  # deleting twice is fine


def test_list_keys_spans_owners(store: AccountStore) -> None:
    keys = [key("owner-a"), key("owner-b"), key("owner/with#odd?chars\\")]
    for k in keys:
        store.add_key(k)
    assert {k.key_id for k in store.list_keys()} == {k.key_id for k in keys}


def test_link_binds_the_key_and_reads_back(store: AccountStore) -> None:
    account = linked(store)
    assert store.get_account("owner-a", account.id) == account
    assert store.get_account("owner-b", account.id) is None
    bound = store.get_key("owner-a", account.key_id)
    assert bound is not None and bound.account_id == account.id


def test_same_tenant_and_application_twice_names_the_existing_account(store: AccountStore) -> None:
    first = linked(store)
    again = key(app=first.application_id)
    store.add_key(again)
    with pytest.raises(PairTaken) as taken:
        store.link(account_for(again))
    assert taken.value.account_id == first.id
    assert [a.id for a in every_account(store, "owner-a")] == [first.id]
    assert store.get_key("owner-a", again.key_id).account_id is None  # type: ignore[union-attr]


def test_same_pair_for_another_owner_is_fine(store: AccountStore) -> None:
    first = linked(store)
    other = key("owner-b", app=first.application_id)
    store.add_key(other)
    store.link(account_for(other))
    assert len(every_account(store, "owner-b")) == 1


def test_a_key_binds_to_one_account_only(store: AccountStore) -> None:
    first = linked(store)
    k = store.get_key("owner-a", first.key_id)
    assert k is not None
    second = account_for(k)
    second = second.updated(application_id=str(uuid.uuid4()))
    with pytest.raises(KeyTaken) as taken:
        store.link(second)
    assert taken.value.account_id == first.id


def test_a_missing_key_cannot_be_linked(store: AccountStore) -> None:
    with pytest.raises(KeyTaken) as taken:
        store.link(account_for(key()))
    assert taken.value.account_id is None
    assert every_account(store, "owner-a") == []


def test_twenty_concurrent_links_of_one_pair_give_exactly_one(store: AccountStore) -> None:
    app = str(uuid.uuid4())
    keys = [key(app=app) for _ in range(20)]
    for k in keys:
        store.add_key(k)

    def attempt(k: KeyRecord) -> str:
        try:
            store.link(account_for(k))
            return "linked"
        except PairTaken:
            return "conflict"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, keys))
    assert outcomes.count("linked") == 1 and outcomes.count("conflict") == 19
    assert len(every_account(store, "owner-a")) == 1
    assert sum(1 for k in store.list_keys() if k.account_id) == 1


def test_list_is_newest_first_with_ties_by_id(store: AccountStore) -> None:
    older = linked(store, created=T0)
    tie_b = linked(store, created=T0 + timedelta(hours=1), account_id="b" + str(uuid.uuid4())[1:])
    tie_a = linked(store, created=T0 + timedelta(hours=1), account_id="a" + str(uuid.uuid4())[1:])
    linked(store, "owner-b")
    assert [a.id for a in every_account(store, "owner-a")] == [tie_a.id, tie_b.id, older.id]
    assert len(list(store.list_all_accounts())) == 4


def test_updates_name_the_version_they_read(store: AccountStore) -> None:
    account = linked(store)
    report = {"status": "connected", "checks": [{"id": "tenant", "status": "pass"}]}
    updated = store.update_account(
        account.updated(status="connected", last_verification=report, last_verified_at=T0)
    )
    assert updated.version == account.version + 1
    assert store.get_account("owner-a", account.id) == updated
    with pytest.raises(VersionConflict):
        store.update_account(account.updated(status="action_required"))  # stale read
    assert store.get_account("owner-a", account.id).status == "connected"  # type: ignore[union-attr]


def test_racing_updates_never_lose_one_silently(store: AccountStore) -> None:
    account = linked(store)

    def update(status: str) -> str:
        try:
            store.update_account(account.updated(status=status))
            return "ok"
        except VersionConflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(update, ["connected", "action_required"] * 4))
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 7


def test_updating_a_removed_account_says_so(store: AccountStore) -> None:
    account = linked(store)
    store.unlink("owner-a", account.id)
    with pytest.raises(LookupError):
        store.update_account(account)


def test_unlink_removes_the_account_frees_the_pair_and_marks_the_key(store: AccountStore) -> None:
    account = linked(store)
    assert store.unlink("owner-b", account.id) is None  # another owner's: untouched
    removed = store.unlink("owner-a", account.id)
    assert removed == account
    assert store.get_account("owner-a", account.id) is None
    marked = store.get_key("owner-a", account.key_id)
    assert marked is not None and marked.deleting
    assert store.unlink("owner-a", account.id) is None
    fresh = key(app=account.application_id)
    store.add_key(fresh)
    store.link(account_for(fresh))  # the pair is free again
    with pytest.raises(KeyTaken):  # and a key being deleted can never be bound again
        store.link(account_for(marked).updated(application_id=str(uuid.uuid4())))


def test_odd_owner_names_are_kept_apart(store: AccountStore) -> None:
    a = linked(store, "tenant/a#1")
    b = linked(store, "tenant?a\\1")
    assert [x.id for x in every_account(store, "tenant/a#1")] == [a.id]
    assert [x.id for x in every_account(store, "tenant?a\\1")] == [b.id]


def test_large_partitions_are_read_past_one_page(store: AccountStore) -> None:
    app_ids = [str(uuid.uuid4()) for _ in range(1005)]

    def make(app: str) -> None:
        k = key(app=app)
        store.add_key(k)
        store.link(account_for(k))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(make, app_ids))
    assert len(every_account(store, "owner-a")) == 1005
    assert len(list(store.list_keys())) == 1005


def test_ping(store: AccountStore) -> None:
    store.ping()


def test_a_report_naming_1000_verified_domains_reads_back_whole(store: AccountStore) -> None:
    # Table Storage holds at most 32K characters in one string property; a report names the
    # domains twice (organization and the organization_match text), about 90,000 characters here.
    account = linked(store)
    domains = [f"subsidiary-{n:04d}.contoso-holdings.example.com" for n in range(1000)]
    report = {
        "status": "connected",
        "checkedAt": "2026-11-26T17:00:00.123Z",
        "organization": {"id": TENANT, "displayName": "Contoso", "verifiedDomains": domains},
        "checks": [
            {"id": "organization_match", "status": "warn", "detail": ", ".join(domains)},
            {"id": "tenant", "status": "pass", "detail": "Ünïcödé ✓ 😀 " * 100},
        ],
    }
    assert len(json.dumps(report)) > 64 * 1024
    big = store.update_account(account.updated(last_verification=report, last_verified_at=T0))
    assert store.get_account("owner-a", account.id) == big
    assert [a.last_verification for a in every_account(store, "owner-a")] == [report]
    assert [a.last_verification for a in store.list_all_accounts()] == [report]
    # A later, small report replaces it whole: no part of the big one is left to join.
    small = {"status": "connected", "checkedAt": "2026-11-26T18:00:00.000Z", "checks": []}
    store.update_account(big.updated(last_verification=small))
    assert store.get_account("owner-a", account.id).last_verification == small  # type: ignore[union-attr]
    assert store.unlink("owner-a", account.id) is not None


def test_an_oversized_report_is_stored_summarised_never_refused(store: AccountStore) -> None:
    # Past what any real tenant has (5,000 domains of 200 characters): the stored copy keeps the
    # first domains, counts the rest and shortens the texts, and the update still succeeds.
    account = linked(store)
    domains = [f"{n:05d}-" + "d" * 190 + ".example.com" for n in range(5000)]
    report = {
        "status": "action_required",
        "checkedAt": "2026-11-26T17:00:00.000Z",
        "organization": {"id": TENANT, "displayName": "Huge", "verifiedDomains": domains},
        "checks": [{"id": "organization_match", "status": "warn", "detail": ", ".join(domains)}],
    }
    saved = store.update_account(account.updated(last_verification=report))
    stored = store.get_account("owner-a", account.id)
    assert stored is not None and stored.version == saved.version
    kept = stored.last_verification
    assert kept is not None and kept["status"] == "action_required"
    if store.backend == "sqlite":
        assert kept == report  # no limit to respect
    else:
        organization = kept["organization"]
        assert organization["verifiedDomains"] == domains[: len(organization["verifiedDomains"])]
        assert (
            len(organization["verifiedDomains"]) + organization["verifiedDomainsTruncated"] == 5000
        )
        assert kept["checks"][0]["detail"].startswith(domains[0])


def test_a_lost_race_reaches_the_caller_as_503_with_retry_after(store: AccountStore) -> None:
    account = linked(store)
    store.update_account(account.updated(status="connected"))
    with pytest.raises(VersionConflict) as lost:
        store.update_account(account.updated(status="action_required"))
    response = problem_response(lost.value)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = json.loads(response.get_body())
    assert body["status"] == 503 and "another request" in body["detail"]


def test_an_unused_key_is_marked_for_deletion_only_while_no_account_uses_it(
    store: AccountStore,
) -> None:
    bound = linked(store)
    assert store.mark_unused_key_deleting("owner-a", bound.key_id) is False
    assert store.get_key("owner-a", bound.key_id).deleting is False  # type: ignore[union-attr]
    assert store.mark_unused_key_deleting("owner-a", str(uuid.uuid4())) is False  # no such key
    unused = key()
    store.add_key(unused)
    assert store.mark_unused_key_deleting("owner-b", unused.key_id) is False  # another owner's
    assert store.mark_unused_key_deleting("owner-a", unused.key_id) is True
    assert store.get_key("owner-a", unused.key_id).deleting is True  # type: ignore[union-attr]
    assert store.mark_unused_key_deleting("owner-a", unused.key_id) is True  # repeatable
    with pytest.raises(KeyTaken) as taken:  # the Connect that comes second is refused
        store.link(account_for(unused))
    assert taken.value.account_id is None
    assert every_account(store, "owner-a") == [bound]
