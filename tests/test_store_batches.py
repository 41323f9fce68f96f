"""The store's batch writes (a sync page's links, jobs and log lines), on SQLite and PostgreSQL."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import enum
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin.store import JobState, Link, LogLevel, open_store
from ambac_hubspot_plugin.store._inbox_sql import CHUNK, IN_LIST, _unbounded, in_lists, shaped
from ambac_hubspot_plugin.store._schema import links
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    store,
    store_url,
)


def _row(hubspot_id: str, host_id: str, object_type: str = "company",
         synced: dict[str, Any] | None = None) -> tuple[str, str, str, str, dict[str, Any]]:
    return (object_type, hubspot_id, object_type, host_id, synced or {})


def _link_count(store: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(links)).scalar_one())


# -- create_links ----------------------------------------------------------------------------


def test_create_links_returns_each_new_link_in_row_order(store: Any) -> None:
    """Every row of a batch lands, each paired with its own id and synced values, as found later."""
    rows = [_row(str(i), f"h{i}", synced={"website": f"https://www.c{i}.com", "n": i}) for i in range(7)]
    made = store.create_links("t", "p", rows)
    assert [(m.hubspot_id, m.host_id, m.synced["n"]) for m in made] == [(str(i), f"h{i}", i) for i in range(7)]
    assert len({m.id for m in made}) == 7
    found = store.get_links_by_hubspot("t", "p", "company", [str(i) for i in range(7)])
    assert all(found[m.hubspot_id] == m for m in made)
    assert [link.host_id for link in store.company_links_by_domain("t", "p", "c3.com")] == ["h3"]


def test_create_links_spans_several_statements(store: Any) -> None:
    """A batch larger than one statement's rows lands whole, each row matched to its id."""
    made = store.create_links("t", "p", [_row(str(i), f"h{i}") for i in range(1_203)])
    assert all(m is not None and (m.hubspot_id, m.host_id) == (str(i), f"h{i}") for i, m in enumerate(made))
    assert store.get_link_by_hubspot("t", "p", "company", "1202") == made[-1]
    assert _link_count(store) == 1_203


def test_create_links_duplicates_inside_one_batch_keep_the_first(store: Any) -> None:
    """Of two rows for one HubSpot object, or one host record, or identical rows, the first is
    linked and the others are None; the rest of the batch lands."""
    made = store.create_links("t", "p", [
        _row("1", "a"), _row("1", "b"),  # one HubSpot company, two host companies
        _row("2", "c"), _row("3", "c"),  # two HubSpot companies, one host company
        _row("4", "d"), _row("4", "d"),  # the same row twice
        _row("5", "e"),
    ])
    assert [None if m is None else (m.hubspot_id, m.host_id) for m in made] == [
        ("1", "a"), None, ("2", "c"), None, ("4", "d"), None, ("5", "e")]
    assert _link_count(store) == 4
    assert store.get_link_by_hubspot("t", "p", "company", "3") is None


def test_create_links_skips_rows_linked_before_and_writes_the_others(store: Any) -> None:
    """A row whose HubSpot object or host record is linked already is None; nothing is changed."""
    before = store.create_link("t", "p", "company", "1", "company", "a")
    made = store.create_links("t", "p", [_row("1", "z"), _row("2", "a"), _row("3", "c")])
    assert made[:2] == [None, None]
    assert made[2] is not None and made[2].hubspot_id == "3"
    assert store.get_link_by_hubspot("t", "p", "company", "1") == before
    assert store.create_links("t", "p", []) == []


def test_create_links_a_concurrent_writer_of_one_link_fails_only_that_row(store_url: str, store: Any) -> None:
    """Another writer linking the same company in a transaction still open: the batch waits for
    it, then that row is None and every other row lands; no duplicate, no error."""
    other = open_store(store_url)
    results: list[Any] = []
    errors: list[BaseException] = []

    def batch() -> None:
        try:
            results.extend(store.create_links("t", "p", [_row("1", "mine"), _row("2", "b"), _row("3", "c")]))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    try:
        with other.engine.begin() as conn:
            now = FakeClock()()
            conn.execute(sa.insert(links).values(
                tenant_id="t", portal_id="p", object_type="company", hubspot_id="1", host_type="company",
                host_id="theirs", synced="{}", created_at=now, updated_at=now))
            writer = threading.Thread(target=batch)
            writer.start()
            time.sleep(0.3)  # the batch reaches the database and waits on the open transaction
        writer.join(60)
    finally:
        other.close()
    assert not errors, errors
    assert [None if m is None else m.host_id for m in results] == [None, "b", "c"]
    assert store.get_link_by_hubspot("t", "p", "company", "1").host_id == "theirs"
    assert _link_count(store) == 3


# -- enqueue_many ----------------------------------------------------------------------------


def test_enqueue_many_queues_each_item_with_its_attempts(store: Any) -> None:
    """Items without a key all become pending jobs, due now, with the given attempts allowed."""
    assert store.enqueue_many("t", [("push", {"n": 1}, None), ("push", {"n": 2}, None),
                                    ("retry", {"n": 3}, "deal:3")], max_attempts=3) == 3
    jobs = store.queued("t", ["push", "retry"])
    assert sorted((j.kind, j.payload["n"], j.max_attempts, j.state) for j in jobs) == [
        ("push", 1, 3, JobState.PENDING), ("push", 2, 3, JobState.PENDING), ("retry", 3, 3, JobState.PENDING)]
    assert store.enqueue_many("t", []) == 0


def test_enqueue_many_dedupes_inside_the_batch_and_against_pending_jobs(store: Any) -> None:
    """A pending job with the key absorbs an item, and of two items with one key the first
    absorbs the second; another kind or tenant with the same key is a job of its own."""
    first = store.enqueue("t", "push", {"n": 0}, dedupe_key="order:1")
    added = store.enqueue_many("t", [
        ("push", {"n": 1}, "order:1"), ("push", {"n": 2}, "order:2"), ("push", {"n": 3}, "order:2"),
        ("other", {"n": 4}, "order:1")])
    assert added == 2
    by_key = {(j.kind, j.dedupe_key): j for j in store.queued("t", ["push", "other"])}
    assert by_key[("push", "order:1")].id == first
    assert by_key[("push", "order:1")].payload == {"n": 0}
    assert by_key[("push", "order:2")].payload == {"n": 2}
    assert ("other", "order:1") in by_key
    assert store.enqueue_many("u", [("push", {"n": 5}, "order:1")]) == 1


def test_enqueue_many_adds_a_job_behind_a_running_one(store: Any) -> None:
    """A running job with the key does not absorb an item (it may have read the old state)."""
    store.enqueue("t", "push", {"n": 0}, dedupe_key="order:1")
    [running] = store.claim("w", kinds=["push"])
    assert store.enqueue_many("t", [("push", {"n": 1}, "order:1")]) == 1
    waiting = [j for j in store.queued("t", ["push"]) if j.id != running.id]
    assert [(j.state, j.payload) for j in waiting] == [(JobState.PENDING, {"n": 1})]


def test_enqueue_many_refuses_no_attempts(store: Any) -> None:
    """max_attempts below one is a programmer's mistake, refused before anything is written."""
    with pytest.raises(ValueError, match="at least 1"):
        store.enqueue_many("t", [("push", {}, None)], max_attempts=0)
    assert store.queued("t", ["push"]) == []


# -- log_many --------------------------------------------------------------------------------


def test_log_many_writes_every_line_in_order(store: Any) -> None:
    """The lines are read back newest first, with their levels, categories and records."""
    lines = [(LogLevel.INFO, "inbound.company", f"line {i}", f"company:{i}") for i in range(1_500)]
    lines.append((LogLevel.WARNING, "inbound.deal", "last", None))
    assert store.log_many("t", lines) == 1_501
    page = store.read_log("t", limit=3)
    assert [(e.level, e.what, e.message, e.record) for e in page.entries] == [
        (LogLevel.WARNING, "inbound.deal", "last", None),
        (LogLevel.INFO, "inbound.company", "line 1499", "company:1499"),
        (LogLevel.INFO, "inbound.company", "line 1498", "company:1498")]
    assert [e.message for e in store.read_log("t", record="company:7").entries] == ["line 7"]
    assert store.log_many("t", []) == 0
    assert store.read_log("u").entries == ()


# -- take_claims / release_claims --------------------------------------------------------------


def test_take_claims_takes_the_free_keys_and_leaves_another_holders(store: Any, clock: FakeClock) -> None:
    """Free and expired keys are taken, a live claim of another holder is not; keys given twice
    count once; the holder's own claims are renewed by taking them again."""
    ttl = timedelta(seconds=60)
    assert store.take_claim("t", "busy", "b", ttl)
    assert store.take_claim("t", "stale", "b", timedelta(seconds=1))
    clock.advance(2)
    assert store.take_claims("t", ["x", "busy", "stale", "x"], "a", ttl) == {"x", "stale"}
    assert not store.take_claim("t", "x", "c", ttl)
    assert not store.take_claim("t", "stale", "c", ttl)
    clock.advance(50)
    assert store.take_claims("t", ["x", "stale"], "a", ttl) == {"x", "stale"}  # renewed
    clock.advance(50)  # 100 s after taking, 50 s after renewing: still held
    assert not store.take_claim("t", "x", "c", ttl)
    assert store.take_claims("t", [], "a", ttl) == set()
    assert store.take_claims("u", ["busy"], "a", ttl) == {"busy"}  # another tenant's key


def test_release_claims_gives_up_only_the_holders_own(store: Any) -> None:
    """Releasing many keys frees the holder's claims and leaves another holder's alone."""
    ttl = timedelta(seconds=60)
    assert store.take_claims("t", [f"k{i}" for i in range(600)], "a", ttl) == {f"k{i}" for i in range(600)}
    assert store.take_claim("t", "theirs", "b", ttl)
    assert store.release_claims("t", [*(f"k{i}" for i in range(600)), "theirs"], "a") == 600
    assert store.take_claim("t", "k599", "c", ttl)
    assert not store.take_claim("t", "theirs", "c", ttl)
    assert store.release_claims("t", [], "a") == 0


def test_take_claims_races_one_winner_per_key(store_url: str, store: Any) -> None:
    """Two holders claiming the same keys at once, given in opposite orders, from two threads:
    neither fails (no deadlock) and no key is held by both."""
    other = open_store(store_url)
    keys = [f"k{i:04}" for i in range(3_000)]
    won: dict[str, set[str]] = {}
    start = threading.Barrier(2)

    def take(who: str, source: Any, order: list[str]) -> None:
        start.wait(10)
        won[who] = source.take_claims("t", order, who, timedelta(seconds=60))

    try:
        threads = [threading.Thread(target=take, args=("a", store, keys)),
                   threading.Thread(target=take, args=("b", other, keys[::-1]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.close()
    assert won["a"] | won["b"] == set(keys)
    assert not won["a"] & won["b"]


def test_a_records_json_values_are_its_own_and_plain_json() -> None:
    """Records copy their JSON values: flat ones as they are, nested and non-JSON types
    through JSON (a tuple becomes a list, an enum its value), never shared with the caller."""
    class Colour(enum.StrEnum):
        RED = "red"

    now = datetime(2026, 1, 1, tzinfo=UTC)
    flat: dict[str, Any] = {"name": "A", "n": 1, "x": 1.5, "ok": True, "gone": None}
    nested: dict[str, Any] = {"address": {"city": "Oslo"}, "tags": ("a", "b"), "colour": Colour.RED}
    made = [Link(id=i, tenant_id="t", portal_id="p", object_type="deal", hubspot_id=str(i), host_type="order",
                 host_id=f"h{i}", synced=synced, created_at=now, updated_at=now)
            for i, synced in enumerate((flat, nested))]
    flat["name"] = "B"
    nested["address"]["city"] = "Bergen"
    assert made[0].synced == {"name": "A", "n": 1, "x": 1.5, "ok": True, "gone": None}
    assert made[1].synced == {"address": {"city": "Oslo"}, "tags": ["a", "b"], "colour": "red"}
    assert type(made[1].synced["colour"]) is str


def test_batches_come_in_power_of_two_sizes() -> None:
    """Rows in slices of CHUNK and then falling powers of two, in order; IN lists filled up
    to a power of two with their last value."""
    rows = list(range(2 * CHUNK + 77))
    slices = list(shaped(rows))
    assert [len(s) for s in slices] == [CHUNK, CHUNK, 64, 8, 4, 1]
    assert [x for s in slices for x in s] == rows
    assert [len(s) for s in shaped(rows[:150])] == [128, 16, 4, 2]
    values = list(range(2 * IN_LIST + 77))
    lists = list(in_lists(values))
    assert [len(chunk) for chunk in lists] == [IN_LIST, IN_LIST, 128]
    assert lists[:2] == [values[:IN_LIST], values[IN_LIST:2 * IN_LIST]]
    assert lists[2][:77] == values[-77:] and set(lists[2][77:]) == {values[-1]}
    assert list(in_lists([])) == [] and list(shaped([])) == []


def test_batches_of_any_size_take_few_statement_texts(store: Any) -> None:
    """Every row count of a multi-row insert and every IN list length is a statement of its
    own, which SQLite's driver keeps prepared (128 per connection): links written and read in
    batches of 1 to 130 use a few texts, and every link is found."""
    texts: set[str] = set()
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: texts.add(args[2]))
    for n in range(1, 131):
        ids = [f"{n}-{i}" for i in range(n)]
        made = store.create_links("t", "p", [_row(i, f"h{i}") for i in ids])
        assert all(m is not None for m in made)
        assert set(store.get_links_by_hubspot("t", "p", "company", ids)) == set(ids)
        assert set(store.get_links_by_host("t", "company", [f"h{i}" for i in ids])) == {f"h{i}" for i in ids}
    assert len(texts) <= 3 * 8 + 4, sorted(texts, key=len)[:5]


def test_claims_of_any_count_take_few_statement_texts(store: Any) -> None:
    """Claims are an executemany with RETURNING, which SQLAlchemy sends as one multi-row
    statement: taken in batches of 1 to 130 keys, a few texts, and every key held."""
    texts: set[str] = set()
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: texts.add(args[2]))
    for n in range(1, 131):
        keys = [f"email:{n}-{i}@x.com" for i in range(n)]
        assert store.take_claims("t", keys, "me") == set(keys)
        assert store.release_claims("t", keys, "me") == n
    assert len(texts) <= 2 * 8 + 2, sorted(texts, key=len)[:5]


AWKWARD = ['a"b', "c,d", "{e}", "f\\g", "NULL", "", " h ", "ü", "i'j"]


def test_lookups_of_many_values_find_every_one_and_on_postgresql_in_one_statement(store: Any) -> None:
    """More values than an IN list takes, spelled as array literals would trip over (quotes,
    commas, braces, a backslash, ``NULL``, empty): every link, claim and held key is found.
    On PostgreSQL each is one statement (``= ANY`` of an array; the claims' rows from one),
    not one per IN list or multi-row batch."""
    ids = [*AWKWARD, *(f"{i}" for i in range(2 * IN_LIST + 77))]
    hosts = [f"h{i}" for i in range(len(ids))]
    store.create_links("t", "p", [_row(i, h) for i, h in zip(ids, hosts, strict=True)])
    store.create_links("t", "p", [_row(i, f"deal-{i}", object_type="deal") for i in ids[:50]])
    texts: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: texts.append(args[2]))
    found = store.get_links_by_hubspot("t", "p", "company", [*ids, "missing"])
    assert {k: v.host_id for k, v in found.items()} == dict(zip(ids, hosts, strict=True))
    assert set(store.get_links_by_host("t", "company", hosts)) == set(hosts)
    assert store.take_claims("t", ids, "me") == set(ids)
    assert store.release_claims("t", [*ids, "not held"], "me") == len(ids)
    one_each = store.engine.dialect.name == "postgresql"
    # links by HubSpot id, by host id, taking the claims, giving them up: one statement each
    # on PostgreSQL
    statements = [t for t in texts if t.lstrip().upper().startswith(("SELECT", "INSERT", "DELETE"))]
    assert (len(statements) == 4) == one_each, statements


def test_queued_jobs_of_some_dedupe_keys_only(store: Any) -> None:
    """``queued(..., dedupe_keys=...)`` lists the jobs of those keys alone, in every state, by id
    (the push looks for the dead rechecks of held records this way)."""
    ids = {key: store.enqueue("t", "inbound.deal", {"deal_id": key}, dedupe_key=f"deal:{key}", max_attempts=1)
           for key in ("1", "2", "3", "it's {\"odd\"}")}
    store.enqueue("u", "inbound.deal", {"deal_id": "1"}, dedupe_key="deal:1")  # another tenant
    store.enqueue("t", "inbound.recheck", {"object_id": "1"}, dedupe_key="deal:1")  # another kind
    (claimed,) = store.claim("w", kinds=["inbound.deal"])
    store.fail(claimed.id, "w", "failed")
    found = store.queued("t", ["inbound.deal"], dedupe_keys=["deal:3", "deal:1", "deal:it's {\"odd\"}", "deal:9"])
    assert [job.id for job in found] == sorted([ids["1"], ids["3"], ids["it's {\"odd\"}"]])
    assert {job.state for job in found} == {JobState.DEAD, JobState.PENDING}
    assert store.queued("t", ["inbound.deal"], dedupe_keys=[]) == []


def test_only_a_plain_string_columns_length_is_dropped_for_a_lookup() -> None:
    """A native enum is a string type with a length too, but its values are its own: it keeps its
    type (a cast to plain VARCHAR would compare it as text, or fail). A non-native one is a
    VARCHAR(n), and loses its length as any."""
    kinds = sa.Enum("deal", "company", name="kinds")
    assert _unbounded(kinds) is kinds
    as_text = _unbounded(sa.Enum("deal", "company", name="kinds", native_enum=False))
    assert type(as_text) is sa.String and as_text.length is None, "a VARCHAR(n) on PostgreSQL: cut like one"
    assert _unbounded(sa.Integer()).__class__ is sa.Integer
    plain = _unbounded(sa.String(64))
    assert type(plain) is sa.String and plain.length is None


def test_a_value_longer_than_its_column_is_never_cut_to_match_or_be_stored(store: Any) -> None:
    """PostgreSQL's explicit cast to VARCHAR(n) cuts a longer value silently: a lookup by a
    too-long id matched the link whose id is its first 64 characters, and a batch insert stored
    a cut id. A lookup finds nothing, and an insert is refused (or, on SQLite, which keeps any
    length, stored whole)."""
    kept = "7" * 64
    store.create_links("t", "p", [_row(kept, "h1", object_type="deal")])
    assert store.get_links_by_hubspot("t", "p", "deal", [kept + "8"]) == {}
    too_long = "9" * 65
    try:
        store.create_links("t", "p", [_row(too_long, "h2", object_type="deal")])
    except Exception:  # refused: whichever error the driver raises, nothing stored
        assert store.engine.dialect.name == "postgresql"
    assert store.get_links_by_hubspot("t", "p", "deal", [too_long[:64]]) == {}
