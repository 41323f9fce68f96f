"""Store claims: one holder per (tenant, key), expiry, release; and no duplicate host user
when two processes link one new HubSpot contact at once."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin._chunk_claims import ChunkClaims
from ambac_hubspot_plugin._linking import _email_claim_key
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.store import (
    CLAIM_TTL,
    HEAD,
    ClaimTimeoutError,
    create_store_engine,
    current_revision,
    migrate,
    open_store,
)
from tests._claim_child import link_contact
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    store,
    store_url,
)

TTL = timedelta(seconds=60)


def test_a_held_claim_refuses_another_holder_until_released(store: Any) -> None:
    assert store.take_claim("1", "k", "a", TTL)
    assert not store.take_claim("1", "k", "b", TTL)
    assert store.take_claim("2", "k", "b", TTL)  # another tenant's key is another claim
    assert store.take_claim("1", "other", "b", TTL)
    assert store.take_claim("1", "k", "a", TTL)  # the holder may renew
    assert store.release_claim("1", "k", "a")
    assert store.take_claim("1", "k", "b", TTL)


def test_an_expired_claim_is_taken_over(store: Any, clock: FakeClock) -> None:
    assert store.take_claim("1", "k", "a", TTL)
    clock.advance(TTL - timedelta(seconds=1))
    assert not store.take_claim("1", "k", "b", TTL)
    clock.advance(seconds=1)
    assert store.take_claim("1", "k", "b", TTL)
    assert not store.take_claim("1", "k", "a", TTL)
    assert not store.release_claim("1", "k", "a")  # no longer a's: nothing happens
    assert not store.take_claim("1", "k", "c", TTL)


def test_release_by_a_non_holder_does_nothing(store: Any) -> None:
    assert store.take_claim("1", "k", "a", TTL)
    assert not store.release_claim("1", "k", "b")
    assert not store.release_claim("2", "k", "a")
    assert not store.take_claim("1", "k", "b", TTL)


def test_a_claim_must_last(store: Any) -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        store.take_claim("1", "k", "a", timedelta(0))


def test_hold_claim_waits_for_the_holder_then_releases(store: Any, clock: FakeClock) -> None:
    assert store.take_claim("1", "k", "other", TTL)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the other holder finishes while we wait
        sleeps.append(seconds)
        store.release_claim("1", "k", "other")

    with store.hold_claim("1", "k", sleep=sleep) as holder:
        assert len(sleeps) == 1
        assert not store.take_claim("1", "k", "third", TTL)
    assert store.take_claim("1", "k", "third", TTL)  # released when the block ended
    assert holder != "third"


def test_a_claim_a_killed_process_left_never_outlasts_the_default_wait(
        store: Any, clock: FakeClock) -> None:
    """With the defaults, a claim whose holder died expires while the next one waits: the wait
    ends holding it, never in ClaimTimeoutError (a resumed backfill must not fail on it)."""
    assert store.take_claim("1", "k", "killed")  # the default TTL, and never released

    def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    started = clock()
    with store.hold_claim("1", "k", sleep=sleep) as holder:
        assert holder != "killed"
    assert clock() - started <= CLAIM_TTL + timedelta(seconds=1)


def test_the_claim_key_of_any_email_fits_the_store(store: Any) -> None:
    """However long the email HubSpot sends, its claim key is bounded: claiming it works on
    both stores (the key column holds 320 characters)."""
    key = _email_claim_key("x" * 1000 + "@example.com")
    assert len(key) < 100 and key == _email_claim_key("  " + "X" * 1000 + "@EXAMPLE.com")
    with store.hold_claim("1", key):
        assert not store.take_claim("1", key, "other")


def test_hold_claim_releases_when_the_block_raises(store: Any) -> None:
    with pytest.raises(RuntimeError), store.hold_claim("1", "k"):
        raise RuntimeError("boom")
    assert store.take_claim("1", "k", "next", TTL)


def test_hold_claim_gives_up_after_its_wait(store: Any, clock: FakeClock) -> None:
    assert store.take_claim("1", "k", "other", timedelta(hours=1))

    def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    with pytest.raises(ClaimTimeoutError) as info, \
            store.hold_claim("1", "k", wait=timedelta(seconds=1), sleep=sleep):
        pytest.fail("the claim is held by another")
    assert (info.value.tenant_id, info.value.key) == ("1", "k")
    assert not store.release_claim("1", "k", "me")
    assert not store.take_claim("1", "k", "me", TTL)  # still the other's


def _eventually(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_chunks_claims_outlive_their_ttl_while_held(store: Any, clock: FakeClock,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Renewed in the background: another holder is refused long after the TTL, until release."""
    monkeypatch.setattr(ChunkClaims, "RENEW_EVERY", 0.02)
    claims = ChunkClaims(store, "1")
    claims.take_all(["a", "b"], timedelta(seconds=1))
    assert "a" in claims and "b" in claims
    for _ in range(3):  # three lives of a claim, each with renewals in it
        clock.advance(CLAIM_TTL - timedelta(seconds=1))
        time.sleep(0.2)
    assert not store.take_claim("1", "a", "other", TTL) and not store.take_claim("1", "b", "other", TTL)
    claims.release()
    assert not claims and store.take_claim("1", "a", "other", TTL)
    assert not any(t.name.startswith("claims ") for t in threading.enumerate()), "the renewer stopped"


def test_a_chunk_drops_a_claim_another_holder_took_and_waits_for_it_again(
        store: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """When renewals failed for a whole TTL (the store was out) and another holder took a key,
    the chunk no longer counts it as held, keeps the others, and must wait to hold it again."""
    monkeypatch.setattr(ChunkClaims, "RENEW_EVERY", 0.02)
    real, out = store.take_claims, threading.Event()

    def renewals_fail_while_out(*args: Any, **kwargs: Any) -> set[str]:
        if out.is_set() and threading.current_thread().name.startswith("claims "):
            raise OSError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "take_claims", renewals_fail_while_out)
    claims = ChunkClaims(store, "1")
    claims.take_all(["a", "b"], timedelta(seconds=1))
    out.set()
    clock.advance(CLAIM_TTL + timedelta(seconds=1))
    assert store.take_claim("1", "a", "other", TTL)
    out.clear()
    assert _eventually(lambda: "a" not in claims), "a renewal finds a taken and drops it"
    assert "b" in claims
    with pytest.raises(ClaimTimeoutError):
        claims.take_all(["a"], timedelta(seconds=0.1))
    claims.release()
    assert not store.take_claim("1", "a", "me", TTL), "the other holder keeps its claim"
    assert store.take_claim("1", "b", "me", TTL), "and the chunk's are given up"


def test_a_chunk_takes_all_its_claims_or_waits_holding_none(store: Any) -> None:
    """While another holder has one of the keys, the chunk holds none of them (so it never
    holds some while it waits for another's); once that one is free it takes them all."""
    assert store.take_claim("1", "b", "other", TTL)
    claims = ChunkClaims(store, "1")
    with pytest.raises(ClaimTimeoutError) as info:
        claims.take_all(["a", "b", "c"], timedelta(seconds=0.2))
    assert info.value.key == "b" and not claims
    assert store.take_claim("1", "a", "probe", TTL) and store.release_claim("1", "a", "probe")
    threading.Timer(0.2, store.release_claim, ("1", "b", "other")).start()
    claims.take_all(["a", "b", "c"], timedelta(seconds=10))
    assert all(key in claims for key in "abc")
    claims.release()


def test_a_store_outage_during_renewals_is_logged_and_survived(store: Any, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A renewal that fails (the store is out) is logged and tried again; the claims stay held."""
    monkeypatch.setattr(ChunkClaims, "RENEW_EVERY", 0.02)
    real, failures = store.take_claims, [3]

    def flaky(*args: Any, **kwargs: Any) -> set[str]:
        if failures[0] > 0 and threading.current_thread().name.startswith("claims "):
            failures[0] -= 1
            raise OSError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "take_claims", flaky)
    claims = ChunkClaims(store, "1")
    with caplog.at_level(logging.WARNING, logger="ambac_hubspot_plugin._chunk_claims"):
        claims.take_all(["a"], timedelta(seconds=1))
        assert _eventually(lambda: failures[0] == 0)
        time.sleep(0.1)
    assert "a" in claims
    assert len([r for r in caplog.records if "could not renew" in r.getMessage()]) == 3
    assert not store.take_claim("1", "a", "other", TTL)
    claims.release()


def test_claims_given_up_during_a_renewal_stay_given_up(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk gives up its deal claims (release_keys) while its renewer is sending a renewal of
    them: the renewal must not take them again after the release (other workers would see the
    deals held, for up to a claim's life, by a chunk done with them)."""
    monkeypatch.setattr(ChunkClaims, "RENEW_EVERY", 0.02)
    real, renewing, go_on, renewed = store.take_claims, threading.Event(), threading.Event(), threading.Event()

    def slow_renewal(*args: Any, **kwargs: Any) -> set[str]:
        if threading.current_thread().name.startswith("claims ") and not renewing.is_set():
            renewing.set()
            assert go_on.wait(10)  # the renewal is on its way to the store
            try:
                return real(*args, **kwargs)
            finally:
                renewed.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "take_claims", slow_renewal)
    claims = ChunkClaims(store, "1")
    assert claims.take_free(["deal:1", "deal:2"]) == {"deal:1", "deal:2"}
    assert renewing.wait(10)
    releasing = threading.Thread(target=claims.release_keys, args=(["deal:1"],))
    releasing.start()
    time.sleep(0.1)  # unguarded, the release deletes the row now, before the renewal lands
    go_on.set()
    releasing.join(10)
    assert renewed.wait(10)
    assert "deal:1" not in claims and "deal:2" in claims
    assert store.take_claim("1", "deal:1", "other", TTL), "given up for good"
    claims.release()


def test_migration_0007_adds_and_drops_the_claims_table(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0006")
        assert "hubspot_claims" not in sa.inspect(engine).get_table_names()
        migrate(engine)
        assert current_revision(engine) == HEAD
        assert "hubspot_claims" in sa.inspect(engine).get_table_names()
        from alembic import command

        from ambac_hubspot_plugin.store._engine import _alembic_config
        with engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0006")
        assert "hubspot_claims" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("round_", range(3))
def test_two_processes_linking_one_new_contact_create_one_user(store_url: str, tmp_path: Path,
                                                               round_: int) -> None:
    """Two processes link the same new HubSpot contact (for two deals) at once: one user."""
    open_store(store_url).close()  # migrated before the children race
    data_dir = tmp_path / "host"
    with ReferenceHost(data_dir, load_entrypoints=False) as host:
        tenant_id = host.create_tenant("Acme")
    email = f"Ann.{round_}@Example.com"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=link_contact,
                         args=(store_url, str(data_dir), tenant_id, deal, "501", email, barrier))
             for deal in ("101", "102")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    with ReferenceHost(data_dir, load_entrypoints=False) as host:
        users = host.services(tenant_id).find_contacts_by_email(email.lower())
    assert len(users) == 1
    store = open_store(store_url)
    try:
        link = store.get_link_by_hubspot(tenant_id, "p1", "contact", "501")
        assert link is not None
        assert link.host_id == users[0].id
    finally:
        store.close()
