"""What plugins get from the reference host: :class:`TenantServices`, one tenant's HostServices.

Its writes never call hooks, so changes a plugin makes are not echoed back to it as events (a
real host marks such saves as coming from the integration and skips its signals). The host's
own edits, which do fire hooks, are :class:`~._host.ReferenceHost`'s methods; they reach the
rows through the same services, so both doors keep the same checks.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import attrs

from ..errors import HostRecordError
from ..host import (
    Address,
    Company,
    CompanyDraft,
    Contact,
    ContactDraft,
    HostCapabilities,
    HostServices,
    Order,
    OrderDraft,
    User,
    UserType,
    as_host_id,
)
from ..mapping import normalize_domain
from ._db import (
    CUSTOMER_GROUP,
    Database,
    company_columns,
    company_from_row,
    contact_from_row,
    order_from_row,
    unique_violation,
)
from ._records import NOTIFICATION_LEVELS, new_uuid7
from ._validate import (
    COMPANY_CHECKS,
    COMPANY_FIELDS,
    CONTACT_CHECKS,
    CONTACT_FIELDS,
    ORDER_CHECKS,
    ORDER_FIELDS,
    check_names,
    checked,
    same_value,
)

# The package's name, as every module of the reference host logs under (see _host.py).
logger = logging.getLogger(__package__)

# Django's username characters are letters, digits and @.+-_; anything else becomes "_".
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]", re.ASCII)

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class ServicesHost(Protocol):
    """What :class:`TenantServices` needs of its host, :class:`~._host.ReferenceHost`.

    A Protocol rather than an import of the host: the host builds services, so importing it
    here would make the two modules import each other.
    """

    @property
    def _db(self) -> Database: ...

    @property
    def _acting_user(self) -> contextvars.ContextVar[User | None]: ...

    def _now(self) -> datetime: ...

    def services(self, tenant_id: str) -> TenantServices: ...

    def plugin_data_dir(self, plugin_id: str) -> Path: ...

    @property
    def capabilities(self) -> HostCapabilities: ...


class TenantServices:
    """The :class:`~ambac_hubspot_plugin.host.HostServices` of one tenant; its writes never call hooks."""

    def __init__(self, host: ServicesHost, tenant_id: str) -> None:
        self._host = host
        self._db = host._db
        self._tenant_id = tenant_id

    def __repr__(self) -> str:
        return f"TenantServices(tenant_id={self._tenant_id})"

    @property
    def tenant_id(self) -> str:
        """The tenant these services are scoped to."""
        return self._tenant_id

    def for_tenant(self, tenant_id: str) -> TenantServices:
        """Return the same services scoped to another tenant (for background work)."""
        return self._host.services(tenant_id)

    def plugin_data_dir(self, plugin_id: str) -> Path:
        """Return (creating it) ``<data dir>/plugins/<plugin_id>``, shared by all tenants."""
        return self._host.plugin_data_dir(plugin_id)

    def capabilities(self) -> HostCapabilities:
        """The fields this host keeps, as the reference host was built with."""
        return self._host.capabilities

    # Orders ----------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> Order | None:
        """Return the order with this id, archived or not, or None."""
        row = self._db.row(
            "SELECT * FROM orders WHERE tenant_id = ? AND id = ?", (self._tenant_id, order_id)
        )
        return None if row is None else order_from_row(row, self._db.connection())

    def get_orders(self, order_ids: Sequence[str]) -> list[Order]:
        """Return the orders with these ids, archived or not, by id; unknown ids are left out."""
        ids = list(dict.fromkeys(as_host_id(i, "order id") for i in order_ids))
        found: list[Order] = []
        for start in range(0, len(ids), 500):  # far below SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.extend(order_from_row(row, self._db.connection()) for row in self._db.rows(
                f"SELECT * FROM orders WHERE tenant_id = ? AND id IN ({marks}) ORDER BY id",  # noqa: S608  # only placeholders are formatted in
                (self._tenant_id, *chunk)))
        return found

    def find_order_by_external_id(self, external_id: str) -> Order | None:
        """Return the order carrying this external id, archived or not, or None."""
        row = self._db.row(
            "SELECT * FROM orders WHERE tenant_id = ? AND external_id = ?",
            (self._tenant_id, external_id),
        )
        return None if row is None else order_from_row(row, self._db.connection())

    def list_orders(self) -> list[Order]:
        """Return all orders of the tenant, archived ones too, oldest first (demo and tests)."""
        rows = self._db.rows(
            "SELECT * FROM orders WHERE tenant_id = ? ORDER BY id", (self._tenant_id,)
        )
        return [order_from_row(row, self._db.connection()) for row in rows]

    def create_order(self, draft: OrderDraft) -> Order:
        """Create an order; an existing order with the same external id is returned unchanged.

        A blank ``order_number`` gets the tenant's next ``ORD-YYYY-####`` (year of the host's
        clock). The draft is checked first, so an invalid draft fails even when its external id
        exists.
        """
        if not isinstance(draft, OrderDraft):
            raise TypeError(f"create_order takes an OrderDraft, not {type(draft).__name__}")
        values = checked(ORDER_CHECKS, attrs.asdict(draft, recurse=False))
        self._check_kept({name: value for name, value in values.items() if value is not None})
        values["archived"] = 0
        now = self._host._now()
        with self._db.write() as conn:
            if values["external_id"] is not None:
                existing = self._order_by_external_id(conn, values["external_id"])
                if existing is not None:
                    return existing
            self._check_references(conn, values)
            if values["order_number"]:
                self._check_order_number_free(conn, str(values["order_number"]), None)
            else:
                values["order_number"] = self._next_order_number(conn, now.year)
            columns = {
                **values,
                "id": new_uuid7(),
                "tenant_id": self._tenant_id,
                "created_at": now.isoformat(),
                "updated_at": now.isoformat(),
            }
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            try:
                # The partial unique index is the guarantee; the SELECT above only spares a number.
                row = conn.execute(
                    f"INSERT INTO orders ({names}) VALUES ({marks}) "  # noqa: S608  # names are our constants
                    "ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING "
                    "RETURNING *",
                    tuple(columns.values()),
                ).fetchone()
            except sqlite3.IntegrityError as exc:
                raise unique_violation(exc, values) from exc
            if row is None:
                existing = self._order_by_external_id(conn, values["external_id"])
                assert existing is not None  # the conflict was on this very external id
                return existing
            return order_from_row(row, conn)

    def update_order(self, order_id: str, changes: Mapping[str, object]) -> Order:
        """Set the named :class:`Order` fields and return the updated order."""
        return self._update_order(order_id, changes)[1]

    def _update_order(
        self, order_id: str, changes: Mapping[str, object]
    ) -> tuple[Order, Order, tuple[str, ...]]:
        """Apply ``changes``; return the order before, after, and the fields that really changed."""
        check_names("Order", changes, ORDER_FIELDS)
        self._check_kept(changes)
        values = checked(ORDER_CHECKS, changes)
        if "current_milestone" in values:  # the milestone's id, kept in its own column
            values["milestone_id"] = values.pop("current_milestone")
        if values.get("order_number") == "":
            raise HostRecordError(
                "order_number", changes["order_number"], "cannot be blank once set"
            )
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM orders WHERE tenant_id = ? AND id = ?", (self._tenant_id, order_id)
            ).fetchone()
            if row is None:
                raise HostRecordError(
                    "id", order_id, f"no order with this id in tenant {self._tenant_id}"
                )
            changed = {
                name: value for name, value in values.items() if not same_value(name, row[name], value)
            }
            if not changed:
                return order_from_row(row, conn), order_from_row(row, conn), ()
            self._check_references(conn, changed)
            self._check_milestone(conn, changed.get("milestone_id"))
            if "order_number" in changed:
                self._check_order_number_free(conn, str(changed["order_number"]), order_id)
            if changed.get("external_id") is not None:
                other = self._order_by_external_id(conn, str(changed["external_id"]))
                if other is not None:
                    raise HostRecordError(
                        "external_id",
                        changed["external_id"],
                        f"is already used by order {other.id}",
                    )
            new_row = self._update_row(conn, "orders", order_id, changed, values)
        return (
            order_from_row(row, conn),
            order_from_row(new_row, conn),
            tuple(name for name in ORDER_FIELDS
                  if name in changed or (name == "current_milestone" and "milestone_id" in changed)),
        )

    def _check_kept(self, values: Mapping[str, object]) -> None:
        """Refuse an order field this host was built without (``capabilities().order_fields``)."""
        kept = self._host.capabilities.order_fields
        for name in values:
            if name not in kept:
                raise HostRecordError(name, values[name], "this host's orders have no such field")

    def _check_milestone(self, conn: sqlite3.Connection, milestone_id: object) -> None:
        if milestone_id is not None and conn.execute(
            "SELECT 1 FROM milestones WHERE tenant_id = ? AND id = ?", (self._tenant_id, milestone_id)
        ).fetchone() is None:
            raise HostRecordError("current_milestone", milestone_id,
                                  f"no such milestone in tenant {self._tenant_id}")

    def _order_by_external_id(self, conn: sqlite3.Connection, external_id: object) -> Order | None:
        row = conn.execute(
            "SELECT * FROM orders WHERE tenant_id = ? AND external_id = ?",
            (self._tenant_id, external_id),
        ).fetchone()
        return None if row is None else order_from_row(row, conn)

    def _check_order_number_free(
        self, conn: sqlite3.Connection, number: str, order_id: str | None
    ) -> None:
        row = conn.execute(
            "SELECT id FROM orders WHERE tenant_id = ? AND order_number = ?",
            (self._tenant_id, number),
        ).fetchone()
        if row is not None and row["id"] != order_id:
            raise HostRecordError(
                "order_number",
                number,
                f"is already used by order {row['id']}; order numbers are unique per tenant",
            )

    def _next_order_number(self, conn: sqlite3.Connection, year: int) -> str:
        last = conn.execute(
            "INSERT INTO order_sequences (tenant_id, year, last) VALUES (?, ?, 1) "
            "ON CONFLICT (tenant_id, year) DO UPDATE SET last = last + 1 RETURNING last",
            (self._tenant_id, year),
        ).fetchone()[0]
        number = int(last)
        # Hand-typed numbers may already hold the next one; skip past them like the host does.
        while conn.execute(
            "SELECT 1 FROM orders WHERE tenant_id = ? AND order_number = ?",
            (self._tenant_id, f"ORD-{year:04d}-{number:04d}"),
        ).fetchone():
            number += 1
        if number != last:
            conn.execute(
                "UPDATE order_sequences SET last = ? WHERE tenant_id = ? AND year = ?",
                (number, self._tenant_id, year),
            )
        return f"ORD-{year:04d}-{number:04d}"

    def _check_references(self, conn: sqlite3.Connection, values: Mapping[str, object]) -> None:
        """Refuse foreign keys pointing at another tenant's rows (SQLite's FKs ignore tenants)."""
        for field, table in (
            ("company_id", "companies"),
            ("parent_company_id", "companies"),
            ("customer_id", "users"),
        ):
            value = values.get(field)
            if (
                value is not None
                and conn.execute(
                    f"SELECT 1 FROM {table} WHERE tenant_id = ? AND id = ?",  # noqa: S608  # constant table names
                    (self._tenant_id, value),
                ).fetchone()
                is None
            ):
                raise HostRecordError(field, value, f"no such record in tenant {self._tenant_id}")

    def _update_row(
        self,
        conn: sqlite3.Connection,
        table: str,
        row_id: str,
        columns: Mapping[str, object],
        values: Mapping[str, object],
    ) -> sqlite3.Row:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        try:
            row: sqlite3.Row = conn.execute(
                f"UPDATE {table} SET {assignments}, updated_at = ? "  # noqa: S608  # constant table and column names
                "WHERE tenant_id = ? AND id = ? RETURNING *",
                (*columns.values(), self._host._now().isoformat(), self._tenant_id, row_id),
            ).fetchone()
        except sqlite3.IntegrityError as exc:
            raise unique_violation(exc, values) from exc
        return row

    # Companies -------------------------------------------------------------------------------

    def get_company(self, company_id: str) -> Company | None:
        """Return the company with this id, or None."""
        row = self._db.row(
            "SELECT * FROM companies WHERE tenant_id = ? AND id = ?", (self._tenant_id, company_id)
        )
        return None if row is None else company_from_row(row)

    def find_companies_by_name(self, name: str) -> Sequence[Company]:
        """Return the companies whose name equals ``name`` ignoring case."""
        rows = self._db.rows(
            "SELECT * FROM companies WHERE tenant_id = ? AND name_key = ? ORDER BY id",
            (self._tenant_id, name.casefold()),
        )
        return [company_from_row(row) for row in rows]

    def find_companies_by_domain(self, domain: str) -> Sequence[Company]:
        """Return the companies whose website's normalised domain equals ``domain`` normalised.

        A host whose companies have no ``website`` (Ambac Tracker's) returns ``[]``: the plugin
        calls this only when ``website`` is one of :meth:`capabilities`' company fields, and
        matches domains through its own records otherwise.
        """
        wanted = normalize_domain(domain)
        if not wanted or "website" not in self._host.capabilities.company_fields:
            return []
        rows = self._db.rows(
            "SELECT * FROM companies WHERE tenant_id = ? AND domain = ? ORDER BY id",
            (self._tenant_id, wanted),
        )
        return [company_from_row(row) for row in rows]

    def list_companies(self) -> list[Company]:
        """Return all companies of the tenant, oldest first (demo and tests)."""
        rows = self._db.rows(
            "SELECT * FROM companies WHERE tenant_id = ? ORDER BY id", (self._tenant_id,)
        )
        return [company_from_row(row) for row in rows]

    def create_company(self, draft: CompanyDraft) -> Company:
        """Create a company; an existing company with the same external id is returned unchanged.

        Atomic like :meth:`create_order`: the partial unique index and ``ON CONFLICT DO NOTHING``
        leave one company when workers race on the same external id.
        """
        if not isinstance(draft, CompanyDraft):
            raise TypeError(f"create_company takes a CompanyDraft, not {type(draft).__name__}")
        values = checked(COMPANY_CHECKS, attrs.asdict(draft, recurse=False))
        self._refuse_fields_it_lacks(values)
        now = self._host._now().isoformat()
        columns = {
            **company_columns(values),
            "id": new_uuid7(),
            "tenant_id": self._tenant_id,
            "created_at": now,
            "updated_at": now,
        }
        with self._db.write() as conn:
            row = conn.execute(
                f"INSERT INTO companies ({', '.join(columns)}) "  # noqa: S608  # constant column names
                f"VALUES ({', '.join('?' for _ in columns)}) "
                "ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING "
                "RETURNING *",
                tuple(columns.values()),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT * FROM companies WHERE tenant_id = ? AND external_id = ?",
                    (self._tenant_id, values["external_id"]),
                ).fetchone()
        return company_from_row(row)

    def update_company(self, company_id: str, changes: Mapping[str, object]) -> Company:
        """Set the named :class:`Company` fields and return the updated company."""
        return self._update_company(company_id, changes)[0]

    def _refuse_fields_it_lacks(self, values: Mapping[str, object]) -> None:
        """Refuse a non-empty value for a company field this host does not keep (an empty one,
        the draft's default, is no value)."""
        kept = self._host.capabilities.company_fields
        for name, value in values.items():
            if name not in kept and value not in ("", None, Address()):
                raise HostRecordError(name, value, f"this host's companies have no {name}; "
                                      "keep the value in the plugin's own records")

    def _update_company(
        self, company_id: str, changes: Mapping[str, object]
    ) -> tuple[Company, tuple[str, ...]]:
        check_names("Company", changes, COMPANY_FIELDS)
        values = checked(COMPANY_CHECKS, changes)
        self._refuse_fields_it_lacks(values)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM companies WHERE tenant_id = ? AND id = ?",
                (self._tenant_id, company_id),
            ).fetchone()
            if row is None:
                raise HostRecordError(
                    "id", company_id, f"no company with this id in tenant {self._tenant_id}"
                )
            before = company_from_row(row)
            changed = {
                name: value for name, value in values.items() if getattr(before, name) != value
            }
            if not changed:
                return before, ()
            if (
                changed.get("external_id") is not None
                and conn.execute(
                    "SELECT 1 FROM companies WHERE tenant_id = ? AND external_id = ?",
                    (self._tenant_id, changed["external_id"]),
                ).fetchone()
            ):
                raise HostRecordError(
                    "external_id", changed["external_id"], "is already used by another company"
                )
            new_row = self._update_row(
                conn, "companies", company_id, company_columns(changed), values
            )
        return company_from_row(new_row), tuple(name for name in COMPANY_FIELDS if name in changed)

    # Contacts --------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> Contact | None:
        """Return the user with this id as a contact (``user_type`` tells internal users), or None."""
        row = self._db.row(
            "SELECT * FROM users WHERE tenant_id = ? AND id = ?", (self._tenant_id, contact_id)
        )
        return None if row is None else contact_from_row(row)

    def find_contacts_by_email(self, email: str) -> Sequence[Contact]:
        """Return this tenant's users whose email equals ``email`` ignoring case, by id."""
        rows = self._db.rows(
            "SELECT * FROM users WHERE tenant_id = ? AND email_key = ? ORDER BY id",
            (self._tenant_id, email.strip().casefold()),
        )
        return [contact_from_row(row) for row in rows]

    def create_contact(self, draft: ContactDraft) -> Contact:
        """Create a portal user in the tenant's ``Customer`` group and return it."""
        if not isinstance(draft, ContactDraft):
            raise TypeError(f"create_contact takes a ContactDraft, not {type(draft).__name__}")
        row = self._insert_user(
            checked(CONTACT_CHECKS, attrs.asdict(draft, recurse=False)), UserType.PORTAL
        )
        return contact_from_row(row)

    def _insert_user(self, values: dict[str, object], user_type: UserType) -> sqlite3.Row:
        """Insert a user; a ``PORTAL`` one joins the ``Customer`` group. Emails may repeat."""
        now = self._host._now().isoformat()
        columns = {
            **values,
            "email_key": str(values["email"]).strip().casefold(),
            "user_type": user_type.value,
            "tenant_id": self._tenant_id,
            "created_at": now,
            "updated_at": now,
        }
        with self._db.write() as conn:
            self._check_references(conn, values)
            columns["username"] = self._new_username(conn, str(values["email"]))
            row: sqlite3.Row = conn.execute(
                f"INSERT INTO users ({', '.join(columns)}) "  # noqa: S608  # constant column names
                f"VALUES ({', '.join('?' for _ in columns)}) RETURNING *",
                tuple(columns.values()),
            ).fetchone()
            if user_type is UserType.PORTAL:
                conn.execute(
                    "INSERT INTO user_groups (user_id, name) VALUES (?, ?)",
                    (row["id"], CUSTOMER_GROUP),
                )
        return row

    def _new_username(self, conn: sqlite3.Connection, email: str) -> str:
        """``<tenant id>-<local part>-<n>``: the tenant id makes it unique across tenants, ``n``
        within one; checked inside the write transaction, backed by the unique index."""
        local = _USERNAME_UNSAFE.sub("_", email.partition("@")[0].casefold())[:100] or "user"
        serial = 1
        while True:
            username = f"{self._tenant_id}-{local}-{serial}"
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is None:
                return username
            serial += 1

    def update_contact(self, contact_id: str, changes: Mapping[str, object]) -> Contact:
        """Set the named :class:`Contact` fields and return the updated contact."""
        check_names("Contact", changes, CONTACT_FIELDS)
        values = checked(CONTACT_CHECKS, changes)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM users WHERE tenant_id = ? AND id = ?", (self._tenant_id, contact_id)
            ).fetchone()
            if row is None:
                raise HostRecordError(
                    "id", contact_id, f"no contact with this id in tenant {self._tenant_id}"
                )
            changed = {name: value for name, value in values.items() if row[name] != value}
            if not changed:
                return contact_from_row(row)
            self._check_references(conn, changed)
            columns = dict(changed)
            if "email" in changed:
                columns["email_key"] = str(changed["email"]).strip().casefold()
            return contact_from_row(self._update_row(conn, "users", contact_id, columns, values))

    # Users, permissions, notifications -------------------------------------------------------

    def current_user(self) -> User | None:
        """Return the user of the current admin operation (see ``acting_as``) if of this tenant."""
        user = self._host._acting_user.get()
        return user if user is not None and user.tenant_id == self._tenant_id else None

    def has_permission(self, user: User, permission: str) -> bool:
        """Return whether ``user`` holds ``permission`` in this tenant."""
        if user.tenant_id != self._tenant_id:
            return False
        row = self._db.row(
            "SELECT 1 FROM permissions JOIN users ON users.id = permissions.user_id "
            "WHERE users.tenant_id = ? AND users.id = ? AND permissions.permission = ?",
            (self._tenant_id, user.id, permission),
        )
        return row is not None

    def add_order_note(self, order_id: str, text: str) -> None:
        """Add an internal note to an order's history (see ``ReferenceHost.order_notes``)."""
        if not text.strip():
            raise HostRecordError("text", text, "a note needs some text")
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM orders WHERE tenant_id = ? AND id = ?",
                            (self._tenant_id, order_id)).fetchone() is None:
                raise HostRecordError("id", order_id, "no such order in this tenant")
            conn.execute(
                "INSERT INTO order_notes (tenant_id, order_id, text, created_at) VALUES (?, ?, ?, ?)",
                (self._tenant_id, order_id, text, self._host._now().isoformat()),
            )

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        """Record a notification for this tenant's admins (see ``ReferenceHost.notifications``)."""
        if level not in NOTIFICATION_LEVELS:
            raise ValueError(
                f"level must be one of {', '.join(NOTIFICATION_LEVELS)}, not {level!r}"
            )
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO notifications (tenant_id, subject, message, level, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (self._tenant_id, subject, message, level, self._host._now().isoformat()),
            )
        logger.log(_LOG_LEVELS[level], "tenant %s admins notified: %s", self._tenant_id, subject)


# Static check that TenantServices fulfils the Protocol plugins are typed against.
_SERVICES_CHECK: type[HostServices] = TenantServices
