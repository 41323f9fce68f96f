"""The reference host's storage: one SQLite file, its schema, and rows turned into records.

Every tenant's rows share the file; queries scope them by ``tenant_id``. The records are the
contract's (:mod:`ambac_hubspot_plugin.host`) and the host's own (:mod:`._records`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from ..errors import HostRecordError
from ..host import (
    Address,
    Company,
    Contact,
    HostCapabilities,
    Milestone,
    Order,
    OrderStatus,
    Shipment,
    User,
    UserType,
)
from ..mapping import normalize_domain
from ._records import Notification, new_uuid7
from ._validate import ADDRESS_FIELDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS companies (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, name_key TEXT NOT NULL, description TEXT NOT NULL,
    website TEXT NOT NULL, domain TEXT NOT NULL, phone TEXT NOT NULL,
    street TEXT NOT NULL, city TEXT NOT NULL, state TEXT NOT NULL, zip TEXT NOT NULL,
    country TEXT NOT NULL, external_id TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS companies_name ON companies (tenant_id, name_key);
CREATE INDEX IF NOT EXISTS companies_domain ON companies (tenant_id, domain);
CREATE UNIQUE INDEX IF NOT EXISTS companies_external_id
    ON companies (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL, email_key TEXT NOT NULL, first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    parent_company_id TEXT REFERENCES companies(id), user_type TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_groups (
    user_id INTEGER NOT NULL REFERENCES users(id), name TEXT NOT NULL,
    PRIMARY KEY (user_id, name));
CREATE TABLE IF NOT EXISTS permissions (
    user_id INTEGER NOT NULL REFERENCES users(id), permission TEXT NOT NULL,
    PRIMARY KEY (user_id, permission));
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    order_number TEXT NOT NULL, name TEXT NOT NULL, order_status TEXT NOT NULL,
    company_id TEXT REFERENCES companies(id), customer_id INTEGER REFERENCES users(id),
    estimated_completion TEXT, order_date TEXT, milestone_id TEXT REFERENCES milestones(id),
    customer_note TEXT NOT NULL, archived INTEGER NOT NULL, external_id TEXT,
    value TEXT, currency TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS milestone_templates (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS milestones (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    template_id TEXT NOT NULL REFERENCES milestone_templates(id), name TEXT NOT NULL,
    position INTEGER NOT NULL, UNIQUE (template_id, position));
CREATE UNIQUE INDEX IF NOT EXISTS orders_number ON orders (tenant_id, order_number);
CREATE UNIQUE INDEX IF NOT EXISTS orders_external_id
    ON orders (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS order_sequences (
    tenant_id TEXT NOT NULL, year INTEGER NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, year));
CREATE TABLE IF NOT EXISTS shipments (
    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, order_id TEXT NOT NULL
    REFERENCES orders(id), carrier TEXT NOT NULL, tracking_number TEXT NOT NULL,
    tracking_url TEXT NOT NULL, ship_date TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_notes (
    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, order_id TEXT NOT NULL
    REFERENCES orders(id), text TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, subject TEXT NOT NULL,
    message TEXT NOT NULL, level TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plugin_settings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id), plugin_id TEXT NOT NULL,
    settings TEXT NOT NULL, enabled INTEGER NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id));
CREATE TABLE IF NOT EXISTS task_runs (name TEXT PRIMARY KEY, last_run_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS host_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _upgrade_values(tx: sqlite3.Connection) -> None:
    """Turn what an earlier version stored into the host's values: order statuses were stored
    as their labels (``In progress``), internal users as ``STAFF``. Cheap when nothing is left."""
    for status in OrderStatus:
        if status.label != status.value:
            tx.execute("UPDATE orders SET order_status = ? WHERE order_status = ?",
                       (status.value, status.label))
    tx.execute("UPDATE users SET user_type = ? WHERE user_type = 'STAFF'", (UserType.INTERNAL.value,))


CUSTOMER_GROUP = "Customer"
"""The tenant group the host's customers' contacts (``PORTAL`` users) belong to."""


def _upgrade_users(tx: sqlite3.Connection) -> None:
    """Bring an earlier version's users to the host's model: a username unique across tenants,
    emails not unique, no phone, portal users in the ``Customer`` group; then the indexes."""
    columns = {row[1] for row in tx.execute("PRAGMA table_info(users)")}
    if "phone" in columns:
        tx.execute("DROP INDEX IF EXISTS users_email")  # emails were unique per tenant
        tx.execute("ALTER TABLE users DROP COLUMN phone")
    if "username" not in columns:
        tx.execute("ALTER TABLE users ADD COLUMN username TEXT NOT NULL DEFAULT ''")
        tx.execute("UPDATE users SET username = tenant_id || '-user-' || id")
        tx.execute("INSERT OR IGNORE INTO user_groups (user_id, name) "
                   "SELECT id, ? FROM users WHERE user_type = ?", (CUSTOMER_GROUP, UserType.PORTAL.value))
    tx.execute("CREATE UNIQUE INDEX IF NOT EXISTS users_username ON users (username)")
    tx.execute("CREATE INDEX IF NOT EXISTS users_email_key ON users (tenant_id, email_key, id)")


def _upgrade_keys(tx: sqlite3.Connection) -> None:
    """Rebuild a file an earlier version keyed with integers (tenants, companies, orders) on
    the host's text keys: every table is renamed, made anew from the schema and refilled, so
    the old ids live on as their text (``"1"``) beside the UUIDv7s of rows made from now on.
    Needs foreign keys off (the caller's connection); a no-op on a current file."""
    kinds = {row[1]: str(row[2]).upper() for row in tx.execute("PRAGMA table_info(tenants)")}
    if kinds.get("id") != "INTEGER":
        return
    tables = [str(row[0]) for row in tx.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        tx.execute(f'ALTER TABLE "{table}" RENAME TO "old_{table}"')
    for (index,) in tx.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
        tx.execute(f'DROP INDEX "{index}"')
    _create_schema(tx)
    for table in tables:
        new = [row[1] for row in tx.execute(f'PRAGMA table_info("{table}")')]
        old = {row[1] for row in tx.execute(f'PRAGMA table_info("old_{table}")')}
        shared = ", ".join(f'"{name}"' for name in new if name in old)
        if shared:
            tx.execute(f'INSERT INTO "{table}" ({shared}) SELECT {shared} FROM "old_{table}"')  # noqa: S608  # names from the file's own schema
        tx.execute(f'DROP TABLE "old_{table}"')


def _upgrade_milestones(tx: sqlite3.Connection) -> None:
    """Bring an earlier version's orders, whose milestone was free text (``current_milestone``),
    to the host's model, a reference to a step of a per-tenant template: each tenant with such
    texts gets one template, ``Milestones (upgraded)``, whose steps are its texts in the order
    they first appear; the orders point at them, and the text column goes."""
    columns = {row[1] for row in tx.execute("PRAGMA table_info(orders)")}
    if "current_milestone" not in columns:
        return
    if "milestone_id" not in columns:
        tx.execute("ALTER TABLE orders ADD COLUMN milestone_id TEXT REFERENCES milestones(id)")
    texts = tx.execute("SELECT tenant_id, current_milestone, MIN(rowid) AS first FROM orders "
                       "WHERE current_milestone != '' GROUP BY tenant_id, current_milestone "
                       "ORDER BY tenant_id, first").fetchall()
    templates: dict[str, tuple[str, int]] = {}
    for tenant_id, text, _first in texts:
        template_id, position = templates.get(str(tenant_id), (new_uuid7(), 0))
        if position == 0:
            tx.execute("INSERT INTO milestone_templates (id, tenant_id, name, created_at) "
                       "VALUES (?, ?, 'Milestones (upgraded)', datetime('now'))", (template_id, tenant_id))
        milestone_id = new_uuid7()
        tx.execute("INSERT INTO milestones (id, tenant_id, template_id, name, position) VALUES (?, ?, ?, ?, ?)",
                   (milestone_id, tenant_id, template_id, text, position + 1))
        tx.execute("UPDATE orders SET milestone_id = ? WHERE tenant_id = ? AND current_milestone = ?",
                   (milestone_id, tenant_id, text))
        templates[str(tenant_id)] = (template_id, position + 1)
    tx.execute("ALTER TABLE orders DROP COLUMN current_milestone")


def _create_schema(tx: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            tx.execute(statement)


class Database:
    """One SQLite file in WAL mode, one connection per thread, writes under ``BEGIN IMMEDIATE``.

    ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, so a check-then-insert inside one
    write transaction is atomic across threads and processes alike; the unique indexes back it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        conn = self.connection()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = OFF")  # the key upgrade rebuilds tables
        with self.write() as tx:
            _create_schema(tx)
            _upgrade_values(tx)
            _upgrade_users(tx)
            _upgrade_milestones(tx)
            _upgrade_keys(tx)
            _upgrade_users(tx)  # the indexes, after a rebuild
        conn.execute("PRAGMA foreign_keys = ON")

    def capabilities(self, given: HostCapabilities | None) -> HostCapabilities:
        """The fields this host keeps: ``given`` is saved in the file, so that every later open
        of the same directory (another process, the CLI) has the same host; without it, the
        saved ones, else Ambac Tracker's."""
        if given is not None:
            value = json.dumps({"order_fields": sorted(given.order_fields),
                                "company_fields": sorted(given.company_fields),
                                "milestones": given.milestones})
            with self.write() as tx:
                tx.execute("INSERT INTO host_settings (name, value) VALUES ('capabilities', ?) "
                           "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (value,))
            return given
        row = self.row("SELECT value FROM host_settings WHERE name = 'capabilities'")
        return HostCapabilities() if row is None else HostCapabilities(**json.loads(row[0]))

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (sqlite3 connections are per thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("this ReferenceHost is closed")
                # check_same_thread=False only so close() may close it; one thread uses it.
                conn = sqlite3.connect(
                    self.path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                self._connections.append(conn)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            # Per connection: WAL with NORMAL survives a process crash (what the tests kill);
            # FULL would add an fsync per commit that only a power loss needs.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 30000")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Inside :meth:`group` a savepoint of the group's transaction instead: released when the
        block ends, rolled back (alone) if it raises.
        """
        conn = self.connection()
        grouped = getattr(self._local, "group", None)
        if grouped is not None:
            if not grouped:  # the group's first write takes the write lock
                conn.execute("BEGIN IMMEDIATE")
                self._local.group = True
            conn.execute("SAVEPOINT write")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                raise
            conn.execute("RELEASE write")
            return
        # IMMEDIATE, not the default DEFERRED: in WAL mode a deferred transaction that read an
        # old snapshot fails at its first write (SQLITE_BUSY_SNAPSHOT), which busy_timeout
        # cannot wait out; taking the write lock first makes writers queue instead.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """This thread's :meth:`write` blocks inside share one transaction: committed when the
        block ends, rolled back if it raises. It begins at the first write, so a group that
        writes nothing takes no lock. Nested, the outer group decides."""
        local = self._local
        if getattr(local, "group", None) is not None:
            yield
            return
        local.group = False
        try:
            yield
            if local.group:
                self.connection().execute("COMMIT")
        except BaseException:
            conn = self.connection()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            local.group = None

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def row(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.connection().execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        """Close every thread's connection; later use raises RuntimeError."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def date_or_none(text: str | None) -> date | None:
    """Return the date an ISO text column holds, or None for NULL."""
    return None if text is None else date.fromisoformat(text)


def milestone_of(conn: sqlite3.Connection, milestone_id: str | None) -> Milestone | None:
    """The milestone with this id, with its place in its template, or None."""
    if milestone_id is None:
        return None
    row = conn.execute(
        "SELECT m.id, m.name, m.position, (SELECT COUNT(*) FROM milestones c "
        "WHERE c.template_id = m.template_id) AS count FROM milestones m WHERE m.id = ?",
        (milestone_id,)).fetchone()
    return None if row is None else Milestone(row["id"], row["name"], row["position"], row["count"])


def order_from_row(row: sqlite3.Row, conn: sqlite3.Connection) -> Order:
    """The order a row holds; ``conn`` reads its milestone."""
    return Order(
        id=row["id"],
        tenant_id=row["tenant_id"],
        order_number=str(row["order_number"]),
        name=str(row["name"]),
        order_status=OrderStatus(row["order_status"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        company_id=row["company_id"],
        customer_id=row["customer_id"],
        estimated_completion=date_or_none(row["estimated_completion"]),
        order_date=date_or_none(row["order_date"]),
        current_milestone=milestone_of(conn, row["milestone_id"]),
        customer_note=str(row["customer_note"]),
        archived=bool(row["archived"]),
        external_id=row["external_id"],
        value=None if row["value"] is None else Decimal(row["value"]),
        currency=row["currency"],
    )


def company_from_row(row: sqlite3.Row) -> Company:
    return Company(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=str(row["name"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        description=str(row["description"]),
        website=str(row["website"]),
        phone=str(row["phone"]),
        address=Address(**{name: str(row[name]) for name in ADDRESS_FIELDS}),
        external_id=row["external_id"],
    )


def contact_from_row(row: sqlite3.Row) -> Contact:
    return Contact(
        id=row["id"],
        tenant_id=row["tenant_id"],
        email=str(row["email"]),
        username=str(row["username"]),
        first_name=str(row["first_name"]),
        last_name=str(row["last_name"]),
        parent_company_id=row["parent_company_id"],
        user_type=UserType(row["user_type"]),
    )


def user_from_row(row: sqlite3.Row) -> User:
    name = f"{row['first_name']} {row['last_name']}".strip()
    return User(
        id=row["id"], tenant_id=row["tenant_id"], email=str(row["email"]), name=name
    )


def notification_from_row(row: sqlite3.Row) -> Notification:
    return Notification(
        id=row["id"],
        tenant_id=row["tenant_id"],
        subject=str(row["subject"]),
        message=str(row["message"]),
        level=str(row["level"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def shipment_from_row(row: sqlite3.Row) -> Shipment:
    return Shipment(
        row["carrier"],
        row["tracking_number"],
        row["tracking_url"],
        date_or_none(row["ship_date"]),
    )


def company_columns(values: Mapping[str, object]) -> dict[str, object]:
    """Spread ``address`` into its columns and derive the lookup keys from name and website."""
    columns = {name: value for name, value in values.items() if name != "address"}
    if "address" in values:
        address = values["address"]
        columns.update({name: getattr(address, name) for name in ADDRESS_FIELDS})
    if "name" in values:
        columns["name_key"] = str(values["name"]).casefold()
    if "website" in values:
        columns["domain"] = normalize_domain(str(values["website"]))
    return columns


def unique_violation(exc: sqlite3.IntegrityError, values: Mapping[str, object]) -> HostRecordError:
    """Name the field behind a unique-index violation the explicit checks did not foresee."""
    text = str(exc)
    for field in ("order_number", "external_id", "email_key"):
        if field in text:
            name = "email" if field == "email_key" else field
            return HostRecordError(name, values.get(name), "is already used in this tenant")
    return HostRecordError("id", None, f"the host's database refused the row: {text}")
