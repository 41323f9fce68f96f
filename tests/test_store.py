"""The state store: migrations, links, checkpoints, sync runs, integration log, bad settings."""

# ruff: noqa: F811  # the fixtures imported from _store_support are re-bound as test arguments

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin.errors import StoreError
from ambac_hubspot_plugin.store import (
    HEAD,
    ConflictDraft,
    JobState,
    LinkConflictError,
    LogLevel,
    RunStatus,
    StateStore,
    create_store_engine,
    current_revision,
    migrate,
    open_store,
)
from tests._store_support import (  # noqa: F401  # fixtures are used by name
    FakeClock,
    clock,
    open_store_worker,
    store,
    store_url,
)

TABLES_0001 = {"hubspot_links", "hubspot_checkpoints", "hubspot_sync_runs",
               "hubspot_integration_log"}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


# -- packaging and import hygiene -------------------------------------------------------------


def test_importing_the_store_package_does_not_load_sqlalchemy() -> None:
    """Importing the store package (for its ports) loads neither SQLAlchemy nor Alembic."""
    code = ("import sys, ambac_hubspot_plugin.store as s; "
            "print(any(m.split('.')[0] in ('sqlalchemy', 'alembic') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"


def test_migration_versions_are_a_package() -> None:
    """The migrations folders have __init__.py, so setuptools' find: ships the revisions."""
    import ambac_hubspot_plugin.store as store_pkg

    root = Path(store_pkg.__file__).parent / "migrations"
    assert (root / "__init__.py").is_file()
    assert (root / "versions" / "__init__.py").is_file()


# -- migrations ------------------------------------------------------------------------------


def test_migrate_from_empty_reaches_head(store_url: str) -> None:
    """An empty database is migrated to the newest revision with every table created."""
    engine = create_store_engine(store_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == HEAD
        assert TABLES_0001 | {"hubspot_jobs"} <= _tables(engine)
    finally:
        engine.dispose()


def test_open_store_upgrades_a_0001_database_keeping_rows(store_url: str,
                                                          clock: FakeClock) -> None:
    """A store left at revision 0001 with data is upgraded to head on open, rows intact."""
    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0001")
        assert current_revision(engine) == "0001"
        assert "hubspot_jobs" not in _tables(engine)
        now = clock()
        old = sa.MetaData()  # the tables as revision 0001 made them (integer host ids)
        with engine.begin() as conn:
            links, checkpoints, sync_runs, integration_log = (
                sa.Table(f"hubspot_{name}", old, autoload_with=conn)
                for name in ("links", "checkpoints", "sync_runs", "integration_log"))
            conn.execute(sa.insert(links).values(
                tenant_id=1, portal_id="p1", object_type="deal", hubspot_id="42",
                host_type="order", host_id=7, synced='{"amount": "10.00"}', created_at=now,
                updated_at=now))
            conn.execute(sa.insert(checkpoints).values(
                tenant_id=1, portal_id="p1", name="deals", value="cursor-1", updated_at=now))
            conn.execute(sa.insert(sync_runs).values(
                tenant_id=1, kind="full", status="succeeded", started_at=now,
                heartbeat_at=now, ended_at=now, created=3, updated=0, skipped=0, failed=0))
            conn.execute(sa.insert(integration_log).values(
                tenant_id=1, level="info", what="sync", record="deal:42", message="hi",
                created_at=now))
    finally:
        engine.dispose()

    upgraded = open_store(store_url, clock=clock)
    try:
        assert current_revision(upgraded.engine) == HEAD
        link = upgraded.get_link_by_host("1", "order", "7")
        assert link is not None
        assert (link.hubspot_id, link.synced) == ("42", {"amount": "10.00"})
        checkpoint = upgraded.get_checkpoint("1", "p1", "deals")
        assert checkpoint is not None
        assert checkpoint.value == "cursor-1"
        assert [r.created for r in upgraded.recent_runs("1")] == [3]
        assert [e.message for e in upgraded.read_log("1").entries] == ["hi"]
        job_id = upgraded.enqueue("1", "push", {"deal": "42"})
        assert upgraded.depths("1") == {(JobState.PENDING, "push"): 1}
        assert job_id > 0
    finally:
        upgraded.close()


def test_concurrent_first_starts_migrate_once(store_url: str) -> None:
    """Three processes opening one empty store at the same moment all succeed at head."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=open_store_worker, args=(store_url, barrier)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    engine = create_store_engine(store_url)
    try:
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_sqlite_store_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    """SQLite connections use WAL, a busy timeout and enforced foreign keys."""
    opened = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    try:
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        opened.close()


# -- links -----------------------------------------------------------------------------------


def test_store_satisfies_the_port(store: Any) -> None:
    """The SQL store is a StateStore as far as the core's Protocol is concerned."""
    assert isinstance(store, StateStore)


def test_link_create_and_get_both_ways(store: Any) -> None:
    """A link is found by its HubSpot key and by its host record, with its synced values."""
    created = store.create_link("1", "p1", "deal", "100", "order", "5", synced={"name": "A"})
    assert store.get_link_by_hubspot("1", "p1", "deal", "100") == created
    assert store.get_link_by_host("1", "order", "5") == created
    assert created.synced == {"name": "A"}
    assert store.get_link_by_hubspot("2", "p1", "deal", "100") is None


UUID = "0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a"


@pytest.mark.parametrize(("tenant", "host_id"), [("42", "007"), (UUID, UUID), ("42", "42")])
def test_host_ids_round_trip_as_the_exact_strings(store: Any, tenant: str, host_id: str) -> None:
    """Host ids are opaque strings: "007" keeps its zeros, "42" does not come back as 42 (as
    SQLite's INTEGER affinity would make it), a UUID fits; and "7" is not "007"."""
    link = store.create_link(tenant, "p1", "deal", "100", "order", host_id)
    [made] = store.create_links(tenant, "p1", [("contact", "200", "user", host_id, {})])
    for found in (store.get_link_by_host(tenant, "order", host_id),
                  store.get_link_by_hubspot(tenant, "p1", "deal", "100"),
                  store.get_links_by_host(tenant, "order", [host_id])[host_id],
                  store.links_page(tenant, "p1", "deal")[0]):
        assert found == link
        assert (type(found.tenant_id), found.tenant_id, type(found.host_id), found.host_id) == (
            str, tenant, str, host_id)
    assert made is not None and made.host_id == host_id
    assert store.get_link_by_host(tenant, "user", host_id) == made
    assert store.get_link_by_host(tenant, "order", host_id.lstrip("0") + "x") is None
    if host_id == "007":
        assert store.get_link_by_host(tenant, "order", "7") is None
    store.set_checkpoint(tenant, "p1", "deals", "c")
    assert store.get_checkpoint(tenant, "p1", "deals").tenant_id == tenant
    assert store.start_run(tenant, "full").tenant_id == tenant
    assert [e.tenant_id for e in store.read_log(tenant).entries] == []
    store.log(tenant, LogLevel.INFO, "sync", "m")
    assert [e.tenant_id for e in store.read_log(tenant).entries] == [tenant]
    job_id = store.enqueue(tenant, "push", {"order": host_id}, dedupe_key=f"order:{host_id}")
    [job] = store.queued(tenant, ["push"])
    assert (job.id, job.tenant_id, job.payload) == (job_id, tenant, {"order": host_id})
    assert store.take_claim(tenant, "k", "a") and not store.take_claim(tenant, "k", "b")
    conflict = store.record_conflict(ConflictDraft(
        tenant_id=tenant, portal_id="p1", object_type="order", host_id=host_id,
        hubspot_type="deal", hubspot_id="100", field="amount", hubspot_value="1", host_value="2",
        last_synced="0", hubspot_changed_at=None, host_changed_at=None, strategy="manual",
        decision="hold"))
    assert (conflict.tenant_id, conflict.host_id) == (tenant, host_id)
    assert store.list_conflicts(tenant, host_id=host_id) == [conflict]
    with store.engine.connect() as conn:  # stored as text, never folded into a number
        stored = conn.execute(sa.text(
            "SELECT tenant_id, host_id FROM hubspot_links ORDER BY id")).all()
    assert stored == [(tenant, host_id), (tenant, host_id)]


def test_settling_closes_only_the_records_open_conflicts_and_keeps_their_story(store: Any) -> None:
    """``settle_conflicts`` closes the open conflict of each named field of that record, keeps
    its reason with why it ended, and leaves closed ones, other fields and other records alone."""
    def held(host_id: str, field: str, decision: str = "hold") -> Any:
        return store.record_conflict(ConflictDraft(
            tenant_id="1", portal_id="p1", object_type="order", host_id=host_id, hubspot_type="deal",
            hubspot_id=f"d{host_id}", field=field, hubspot_value="B", host_value="A", last_synced="0",
            hubspot_changed_at=None, host_changed_at=None, strategy="manual" if decision == "hold" else "x",
            decision=decision, reason="held for a person"))

    name, amount, other = held("5", "name"), held("5", "amount"), held("6", "name")
    decided = held("5", "stage", "ambac")
    assert store.settle_conflicts("1", "order", "5", {}) == []
    (closed,) = store.settle_conflicts("1", "order", "5", {"name": ("A", "both sides now hold 'A'"),
                                                           "stage": ("X", "gone"), "missing": ("Y", "none")})
    assert (closed.id, closed.status, closed.resolution, closed.resolved_value, closed.decided_by) == (
        name.id, "closed", "settled", "A", "sync")
    assert closed.reason == "held for a person; settled: both sides now hold 'A'" and closed.decided_at is not None
    assert {c.id for c in store.list_conflicts("1")} == {amount.id, other.id}
    assert store.get_conflict("1", decided.id) == decided
    assert store.settle_conflicts("1", "order", "5", {"name": ("A", "again")}) == []


def test_link_hubspot_key_is_unique_in_the_database(store: Any) -> None:
    """A second link for the same HubSpot object is refused with LinkConflictError."""
    store.create_link("1", "p1", "deal", "100", "order", "5")
    with pytest.raises(LinkConflictError) as info:
        store.create_link("1", "p1", "deal", "100", "order", "6")
    assert info.value.hubspot_key == ("1", "p1", "deal", "100")
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert store.get_link_by_host("1", "order", "6") is None


def test_link_host_key_is_unique_in_the_database(store: Any) -> None:
    """A second link for the same host record is refused with LinkConflictError."""
    store.create_link("1", "p1", "deal", "100", "order", "5")
    with pytest.raises(LinkConflictError):
        store.create_link("1", "p1", "deal", "101", "order", "5")
    assert store.get_link_by_hubspot("1", "p1", "deal", "101") is None


def test_links_of_different_tenants_do_not_collide(store: Any) -> None:
    """The same HubSpot and host ids may be linked in two tenants."""
    store.create_link("1", "p1", "deal", "100", "order", "5")
    other = store.create_link("2", "p1", "deal", "100", "order", "5")
    assert store.get_link_by_host("2", "order", "5") == other


def test_move_link_repoints_and_refuses_a_taken_id(store: Any, clock: FakeClock) -> None:
    """Moving a link re-points it after a merge; moving onto a linked id is a conflict."""
    first = store.create_link("1", "p1", "company", "1", "company", "10")
    store.create_link("1", "p1", "company", "2", "company", "11")
    clock.advance(timedelta(minutes=1))
    moved = store.move_link(first.id, "3")
    assert (moved.hubspot_id, moved.updated_at) == ("3", clock())
    assert store.get_link_by_hubspot("1", "p1", "company", "1") is None
    with pytest.raises(LinkConflictError):
        store.move_link(first.id, "2")
    assert store.get_link_by_host("1", "company", "10") == moved


def test_update_synced_and_delete_link(store: Any) -> None:
    """Synced values are replaced; a deleted link is gone and deleting twice says False."""
    link = store.create_link("1", "p1", "contact", "9", "contact", "3")
    assert store.update_link_synced(link.id, {"email": "a@b.c"}).synced == {"email": "a@b.c"}
    assert store.delete_link(link.id) is True
    assert store.delete_link(link.id) is False
    assert store.get_link_by_host("1", "contact", "3") is None


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoints_set_overwrite_and_scope(store: Any, clock: FakeClock) -> None:
    """A checkpoint is absent until set, overwritten in place, and scoped by tenant/portal."""
    assert store.get_checkpoint("1", "p1", "deals") is None
    store.set_checkpoint("1", "p1", "deals", "a")
    clock.advance(timedelta(seconds=5))
    store.set_checkpoint("1", "p1", "deals", "b")
    got = store.get_checkpoint("1", "p1", "deals")
    assert got is not None
    assert (got.value, got.updated_at) == ("b", clock())
    assert store.get_checkpoint("1", "p2", "deals") is None
    assert store.get_checkpoint("2", "p1", "deals") is None


# -- sync runs -------------------------------------------------------------------------------


def test_runs_start_finish_and_list_newest_first(store: Any, clock: FakeClock) -> None:
    """Runs record counts and outcome; recent_runs lists a tenant's newest first, by kind."""
    first = store.start_run("1", "full", owner="w1")
    assert first.status is RunStatus.RUNNING
    clock.advance(timedelta(minutes=1))
    done = store.finish_run(first.id, RunStatus.SUCCEEDED, created=2, updated=3, skipped=1)
    assert (done.status, done.created, done.updated, done.skipped, done.ended_at) == (
        RunStatus.SUCCEEDED, 2, 3, 1, clock())
    second = store.start_run("1", "incremental")
    store.start_run("2", "full")
    assert [r.id for r in store.recent_runs("1")] == [second.id, first.id]
    assert [r.id for r in store.recent_runs("1", kind="full")] == [first.id]


def test_recent_runs_pages_by_a_cursor_in_start_order(store: Any, clock: FakeClock) -> None:
    """``before`` continues after that run in (start time, id) order, even when ids disagree."""
    late = store.start_run("1", "incremental")
    clock.advance(timedelta(minutes=-5))  # a process whose clock is behind starts the next id
    early = store.start_run("1", "incremental")
    clock.advance(timedelta(minutes=10))
    same_a, same_b = store.start_run("1", "backfill"), store.start_run("1", "incremental")
    store.start_run("2", "incremental")
    order = [r.id for r in store.recent_runs("1", limit=10)]
    assert order == [same_b.id, same_a.id, late.id, early.id]
    pages, cursor = [], None
    while True:
        page = store.recent_runs("1", limit=1, before=cursor)
        if not page:
            break
        pages.append(page[0].id)
        cursor = page[0].id
    assert pages == order
    assert [r.id for r in store.recent_runs("1", kind="incremental", before=same_b.id)] == [late.id, early.id]
    assert store.recent_runs("1", before=10**9) == [], "an unknown cursor matches nothing"
    assert store.recent_runs("2", before=late.id) == [], "another tenant's run is no cursor"


def test_stale_running_runs_are_failed_and_live_ones_spared(store: Any,
                                                            clock: FakeClock) -> None:
    """fail_stale_runs fails runs without a recent heartbeat and leaves live ones running."""
    crashed = store.start_run("1", "full")
    alive = store.start_run("1", "incremental")
    clock.advance(timedelta(minutes=30))
    store.heartbeat_run(alive.id)
    assert store.fail_stale_runs(timedelta(minutes=10)) == 1
    failed = store.get_run(crashed.id)
    assert failed.status is RunStatus.FAILED
    assert "no heartbeat" in failed.error
    assert store.get_run(alive.id).status is RunStatus.RUNNING


# -- integration log -------------------------------------------------------------------------


def test_log_filters_by_level_record_and_category(store: Any) -> None:
    """read_log keeps the minimum level and worse, and filters by record and category."""
    store.log("1", LogLevel.DEBUG, "sync", "d", record="deal:1")
    store.log("1", LogLevel.WARNING, "sync", "w", record="deal:1")
    store.log("1", LogLevel.ERROR, "webhook", "e", record="deal:2")
    store.log("2", LogLevel.ERROR, "sync", "other tenant", record="deal:1")
    assert [e.message for e in store.read_log("1", min_level=LogLevel.WARNING).entries] == [
        "e", "w"]
    assert [e.message for e in store.read_log("1", record="deal:1").entries] == ["w", "d"]
    assert [e.message for e in store.read_log("1", what="webhook").entries] == ["e"]


def test_log_pages_cover_every_entry_once_newest_first(store: Any) -> None:
    """Following next_before walks the whole log in pages, newest first, without repeats."""
    for i in range(7):
        store.log("1", LogLevel.INFO, "sync", f"m{i}")
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = store.read_log("1", limit=3, before=before)
        seen += [e.message for e in page.entries]
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [f"m{i}" for i in reversed(range(7))]
    assert pages == 3


# -- bad settings ----------------------------------------------------------------------------


def _assert_store_setting_error(info: pytest.ExceptionInfo[StoreError], *, says: str,
                                secret: str | None = None) -> None:
    message = str(info.value)
    assert info.value.setting == "store_url"
    assert "store_url" in message
    assert says in message
    if secret is not None:
        assert secret not in message


def test_unreachable_postgres_is_a_store_error_without_password() -> None:
    """An unreachable PostgreSQL server raises StoreError naming the setting, password hidden."""
    with pytest.raises(StoreError) as info:
        open_store("postgresql+psycopg://alice:s3cr3tpw@127.0.0.1:1/hubspot")
    _assert_store_setting_error(info, says="cannot connect to PostgreSQL at 127.0.0.1:1",
                                secret="s3cr3tpw")
    assert info.value.__cause__ is not None


def test_sqlite_parent_directory_missing_is_a_store_error(tmp_path: Path) -> None:
    """A SQLite path in a directory that does not exist raises StoreError saying so."""
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{tmp_path / 'nope' / 'store.sqlite3'}")
    _assert_store_setting_error(info, says="does not exist")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write into read-only directories")
def test_sqlite_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    """A SQLite path in a read-only directory raises StoreError saying it is not writable."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{locked / 'store.sqlite3'}")
    finally:
        locked.chmod(0o700)
    _assert_store_setting_error(info, says="not writable")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_sqlite_file_that_cannot_be_created_is_a_store_error() -> None:
    """A SQLite file nobody can create (not even root: /proc) raises StoreError, chained."""
    with pytest.raises(StoreError) as info:
        open_store("sqlite:////proc/store.sqlite3")
    _assert_store_setting_error(info, says="cannot open SQLite file /proc/store.sqlite3")
    assert info.value.__cause__ is not None


def test_sqlite_path_that_is_a_directory_is_a_store_error(tmp_path: Path) -> None:
    """A SQLite path naming a directory cannot be opened and raises StoreError, chained."""
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{tmp_path}")
    _assert_store_setting_error(info, says="cannot open SQLite file")
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("url", ["not a url at all", "postgresql+psycopg://bob:hunter22@db:port/x"])
def test_malformed_url_is_a_store_error(url: str) -> None:
    """A malformed URL raises StoreError with an example of a valid one, password hidden."""
    with pytest.raises(StoreError) as info:
        open_store(url)
    _assert_store_setting_error(info, says="not a valid database URL", secret="hunter22")


@pytest.mark.parametrize("url", ["mysql://carol:pa55word@db/x", "mysql://d:pa55/w@rd@db/x",
                                 "mysql://db/x?password=pa55word", "sqlite://",
                                 "sqlite:///:memory:"])
def test_unsupported_scheme_or_memory_is_a_store_error(url: str) -> None:
    """Other databases and in-memory SQLite are refused with what to use instead."""
    with pytest.raises(StoreError) as info:
        open_store(url)
    _assert_store_setting_error(info, says="sqlite:///", secret="pa55word")


def test_switch_to_wal_waits_out_another_opener_holding_the_file(tmp_path: Path) -> None:
    """A new file locked by another process's first transaction is switched to WAL once the
    lock goes, recognised by SQLite's error code rather than its message."""
    import sqlite3
    import threading

    from ambac_hubspot_plugin.store._engine import _enable_wal

    path = tmp_path / "new.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        _enable_wal(opener.cursor())
        assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        release.join()
        opener.close()
        holder.close()
