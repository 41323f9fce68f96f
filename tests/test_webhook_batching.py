"""The batched store calls behind webhook processing: finishing many jobs in one transaction,
and telling many property changes from our own echoes with one query per object type. On
SQLite and PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ambac_hubspot_plugin._echo import echo_flags, is_echo
from tests._store_support import clock, store, store_url  # noqa: F401  # fixtures used by name

TENANT = "7"


def test_complete_many_finishes_the_held_jobs_and_names_the_others(store: Any) -> None:
    """``complete_many`` deletes the jobs this worker holds and leaves, and returns, those it
    does not hold (claimed by another worker, or not running)."""
    for n in range(4):
        store.enqueue(TENANT, "webhook.object", {"n": n}, dedupe_key=f"deal:{n}")
    mine = store.claim("w1", kinds=["webhook.object"], limit=3)
    [theirs] = store.claim("w2", kinds=["webhook.object"], limit=3)
    lost = store.complete_many([job.id for job in mine] + [theirs.id, 10**9], "w1")
    assert lost == {theirs.id, 10**9}
    assert {job.id for job in store.queued(TENANT, ["webhook.object"])} == {theirs.id}
    assert store.complete_many([], "w1") == set()


def test_echo_flags_answer_as_is_echo_does_one_change_at_a_time(store: Any, clock: Any) -> None:
    """For a batch of changes ``echo_flags`` gives exactly :func:`is_echo`'s answers: our
    value inside the echo window, outside it, another value, the same value in another
    format, a property and an object never written, and a change of unknown time."""
    store.remember_pushed(TENANT, "deal", {"1": {"dealstage": "closedwon", "amount": "10.50"},
                                           "2": {"dealstage": "closedwon"}})
    store.remember_pushed(TENANT, "company", {"1": {"name": "Acme"}})
    now = clock()
    changes = [
        ("deal", "1", "dealstage", "closedwon", now + timedelta(seconds=5)),
        ("deal", "1", "dealstage", "closedwon", now + timedelta(hours=2)),
        ("deal", "1", "dealstage", "closedlost", now),
        ("deal", "1", "amount", "10.5", now),
        ("deal", "1", "dealname", "x", now),
        ("deal", "3", "dealstage", "closedwon", now),
        ("deal", "2", "dealstage", "closedwon", None),
        ("companies", "1", "name", "Acme", now),
        ("contact", "1", "name", "Acme", now),
    ]
    one_by_one = [is_echo(store, TENANT, *change) for change in changes]
    assert one_by_one == [True, False, False, True, False, False, True, True, False]
    assert echo_flags(store, TENANT, changes) == one_by_one
    assert echo_flags(store, TENANT, []) == []
