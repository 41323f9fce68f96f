"""``HostServices`` on Ambac Tracker's ORM: every call runs inside the host's ``tenant_context``.

Ids cross as the contract's strings (``host.as_host_id``): tenants, orders and companies are
UUIDv7s, users integers; an id that cannot name a row of a table (digits for a UUID key, a
UUID for the user table) reads as "not found". Writes run in one transaction each, so a
refused value writes nothing, and they fire no ``ambac_*`` events: the services never call the
plugin manager, and their saves write no outbox rows (``events.suppress_host_events``) nor call
the plugin's hooks for an ``IntegrationConfig`` save (``adapter``).

The services also save the plugin's settings (``SavesPluginSettings``) where the bridge reads
them from, the tenant's ``IntegrationConfig`` (``tenant_settings``): its other processes take
the change up at their next recheck (``startup``), and every process starts with it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.transaction import TransactionManagementError
from integrations.models import IntegrationConfig
from Tracker.models import Companies, Milestone, Orders, Tenant, TenantGroup, User, UserRole
from Tracker.services.core.notifications.emit import emit
from Tracker.utils.tenant_context import tenant_context

from ...errors import HostRecordError
from ...host import (
    Company,
    CompanyDraft,
    Contact,
    ContactDraft,
    HostCapabilities,
    Order,
    OrderDraft,
    OrderStatus,
    as_host_id,
)
from ...host import Milestone as MilestoneRecord
from ...host import User as UserRecord
from ._records import (
    COMPANY_FIELDS_KEPT,
    ORDER_FIELDS_KEPT,
    check_date,
    check_external_id,
    check_text,
    company_record,
    contact_record,
    int_pk,
    order_record,
    refuse_missing_fields,
    uuid_pk,
)
from .alerts import EVENT_CODE, alert_payload
from .events import suppress_host_events
from .tenant_settings import PROVIDER, fields_to_save

__all__ = ["ALERT_EVENT_CODE", "CUSTOMER_GROUP", "DjangoHostServices", "acting_as", "user_record"]

CUSTOMER_GROUP = "Customer"
"""The tenant group of customers' contacts (``PORTAL`` users)."""
ALERT_EVENT_CODE = EVENT_CODE
"""The notification event the plugin's admin alerts are emitted as (registered by ``alerts``)."""
NOTIFICATION_LEVELS = ("info", "warning", "error")
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]", re.ASCII)  # Django's username characters stay
_CHUNK = 500  # ids per query in get_orders: far below any backend's parameter limit

_acting_user: ContextVar[UserRecord | None] = ContextVar("ambac_hubspot_acting_user", default=None)


@contextmanager
def acting_as(user: UserRecord) -> Iterator[None]:
    """Make ``user`` the actor of the admin operation run inside the block (``current_user``)."""
    token = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(token)


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for ``parts``."""
    digest = hashlib.sha256("\x1f".join(("ambac-hubspot", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DjangoHostServices:
    """The contract's ``HostServices`` of one tenant, on the host's models.

    :param tenant_id: the tenant (a ``UUID`` or its text).
    :param using: the database alias (the host's ``default``).
    :param data_dir: the root of plugins' own files; default ``settings.AMBAC_PLUGIN_DATA_DIR``.
    """

    def __init__(self, tenant_id: object, *, using: str = DEFAULT_DB_ALIAS,
                 data_dir: Path | str | None = None) -> None:
        self._tenant_id = as_host_id(tenant_id, "tenant_id")
        self._db = using
        self._data_dir = None if data_dir is None else Path(data_dir)

    def __repr__(self) -> str:
        return f"DjangoHostServices(tenant_id={self._tenant_id!r}, using={self._db!r})"

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    def for_tenant(self, tenant_id: str) -> DjangoHostServices:
        return DjangoHostServices(tenant_id, using=self._db, data_dir=self._data_dir)

    def plugin_data_dir(self, plugin_id: str) -> Path:
        root = self._data_dir or getattr(settings, "AMBAC_PLUGIN_DATA_DIR", None)
        if root is None:
            raise ImproperlyConfigured(
                "set AMBAC_PLUGIN_DATA_DIR in the host's settings to a directory every web and "
                "worker process shares (the plugin keeps its default store there)")
        path = Path(root) / plugin_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def capabilities(self) -> HostCapabilities:
        return HostCapabilities(order_fields=ORDER_FIELDS_KEPT, company_fields=COMPANY_FIELDS_KEPT,
                                milestones=True)

    def save_plugin_settings(self, plugin_id: str, settings: Mapping[str, Any]) -> None:
        """Save ``settings`` in the tenant's ``IntegrationConfig`` (one transaction; a new row is
        switched off): the secrets in its encrypted fields, the rest in ``config``.

        :raises ConfigError: settings the row cannot hold without a secret in plain text
            (``tenant_settings.fields_to_save``); nothing is saved then.
        """
        if plugin_id != PROVIDER:
            raise ValueError(f"this host keeps settings for plugin {PROVIDER!r} only, not {plugin_id!r}")
        with self._write():
            tenant = uuid_pk(self._tenant_id)
            row = (IntegrationConfig.objects.using(self._db).select_for_update()
                   .filter(tenant_id=tenant, provider=PROVIDER).first()
                   or IntegrationConfig(tenant_id=tenant, provider=PROVIDER, is_enabled=False))
            for field, value in fields_to_save(row, settings, using=self._db).items():
                setattr(row, field, value)
            row.save(using=self._db)

    # Plumbing -------------------------------------------------------------------------------

    @contextmanager
    def grouped_writes(self) -> Iterator[None]:
        """:class:`~ambac_hubspot_plugin.host.GroupsWrites`: the block's writes in one transaction
        of the host's database, each write's own ``atomic`` block a savepoint in it.

        The transaction is durable: it commits when the block ends. Inside the caller's own
        ``atomic`` block (a view under ``ATOMIC_REQUESTS``) it would be a savepoint, and the
        plugin would link and announce orders the caller may still roll back; so that is
        refused (a test case's own transaction, which Django tells apart, is not the caller's).

        :raises TransactionManagementError: called inside another ``atomic`` block.
        """
        with self._connection(), ExitStack() as group:
            try:
                group.enter_context(transaction.atomic(using=self._db, durable=True))
            except RuntimeError as exc:  # Django's refusal of a nested durable block
                raise TransactionManagementError(
                    "the plugin's grouped writes must commit when the group ends, but they were "
                    "called inside another transaction (an atomic block, or a view under "
                    "ATOMIC_REQUESTS): call the plugin outside it (its views are "
                    "non_atomic_requests)") from exc
            yield

    @contextmanager
    def _read(self) -> Iterator[None]:
        with self._connection(), tenant_context(self._tenant_id):
            yield

    @contextmanager
    def _write(self) -> Iterator[None]:
        # The plugin's own writes are no host events: the receivers write no outbox rows here.
        with self._connection(), tenant_context(self._tenant_id), suppress_host_events(), \
                transaction.atomic(using=self._db):
            yield

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """Leave the thread's connection as found: one this call opened is closed after it.

        Django closes connections at the end of each request; the plugin's own threads (its
        worker, parallel creates) have no requests, and their connections would stay open.
        A request's connection, already open, is left alone.
        """
        connection = connections[self._db]
        opened_here = connection.connection is None
        try:
            yield
        finally:
            if opened_here and not connection.in_atomic_block:
                connection.close()

    def _orders(self) -> Any:
        return Orders.objects.using(self._db).select_related("current_milestone")

    def _companies(self) -> Any:
        return Companies.objects.using(self._db)

    def _users(self) -> Any:
        return User.objects.using(self._db).filter(tenant_id=self._tenant_id)

    def _serialise_creates(self, kind: str, external_id: str) -> None:
        """Hold, until the transaction ends, the right to create ``kind`` with ``external_id``.

        ``external_id`` is not unique in the host, so no constraint stops two workers from both
        finding nothing and both inserting. On PostgreSQL a transaction-scoped advisory lock on
        (tenant, kind, external id) makes the second wait and then find the first's row; other
        backends lock the tenant row (SQLite serialises writers anyway).
        """
        connection = connections[self._db]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)",
                               [_lock_key(kind, self._tenant_id, external_id)])
        else:
            list(Tenant.objects.using(self._db).select_for_update().filter(pk=self._tenant_id)
                 .values_list("pk", flat=True))

    # Orders ---------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> Order | None:
        pk = uuid_pk(order_id)
        with self._read():
            row = None if pk is None else self._orders().filter(pk=pk).first()
            return None if row is None else order_record(row)

    def get_orders(self, order_ids: Sequence[str]) -> list[Order]:
        pks = list(dict.fromkeys(pk for pk in map(uuid_pk, order_ids) if pk is not None))
        found: list[Order] = []
        steps: dict[Any, list[Any]] = {}  # each template's milestones, read once per call
        with self._read():
            for start in range(0, len(pks), _CHUNK):
                rows = self._orders().filter(pk__in=pks[start:start + _CHUNK])
                found.extend(order_record(row, steps) for row in rows)
        return found

    def find_order_by_external_id(self, external_id: str) -> Order | None:
        with self._read():
            row = self._orders().filter(external_id=external_id).order_by("created_at", "pk").first()
            return None if row is None else order_record(row)

    def create_order(self, draft: OrderDraft) -> Order:
        values = {field: getattr(draft, field) for field in (
            "name", "order_number", "order_status", "company_id", "customer_id",
            "estimated_completion", "order_date", "external_id", "value", "currency")}
        refuse_missing_fields(values, ORDER_FIELDS_KEPT, "orders")
        note = check_text("customer_note", draft.customer_note, Orders, "customer_note")
        with self._write():
            # The existing order first: a retried draft's own order number is no conflict.
            external_id = check_external_id(draft.external_id, Orders)
            if external_id is not None:
                self._serialise_creates("order", external_id)
                existing = self._orders().filter(external_id=external_id).order_by("created_at", "pk").first()
                if existing is not None:
                    return order_record(existing)
            columns = self._order_columns(values, creating=True)
            row = Orders(tenant_id=self._tenant_id, customer_note=note, **columns)
            self._save_order(row)
            return order_record(self._orders().get(pk=row.pk))

    def update_order(self, order_id: str, changes: Mapping[str, object]) -> Order:
        unknown = set(changes) - ORDER_FIELDS_KEPT - {"order_date", "value", "currency"}
        if unknown:
            raise ValueError(f"update_order cannot set {sorted(unknown)}")
        refuse_missing_fields(changes, ORDER_FIELDS_KEPT, "orders")
        with self._write():
            row = self._order_row(order_id)
            if "customer_note" in changes and changes["customer_note"] != order_record(row).customer_note:
                raise HostRecordError("customer_note", changes["customer_note"],
                                      "is the host's notes timeline and is never overwritten; add a note")
            columns = self._order_columns({k: v for k, v in changes.items() if k != "customer_note"},
                                          creating=False, row=row)
            for column, value in columns.items():
                setattr(row, column, value)
            if columns:
                self._save_order(row)
            return order_record(self._orders().get(pk=row.pk))

    def add_order_note(self, order_id: str, text: str) -> None:
        if not text.strip():
            raise HostRecordError("text", text, "a note needs some text")
        with self._write():
            row = self._order_row(order_id)
            actor = _acting_user.get()
            user = None
            if actor is not None and actor.tenant_id == self._tenant_id:
                user = self._users().filter(pk=int_pk(actor.id)).first()
            row.add_note(user, text, visibility="INTERNAL")  # appends; the caller saves
            row.save(using=self._db, update_fields=["customer_note"])

    def _order_row(self, order_id: str) -> Any:
        pk = uuid_pk(order_id)
        row = None if pk is None else self._orders().select_for_update(of=("self",)).filter(pk=pk).first()
        if row is None:
            raise HostRecordError("id", order_id, "no such order in this tenant")
        return row

    def _save_order(self, row: Any) -> None:
        try:
            with transaction.atomic(using=self._db):
                row.save(using=self._db)
        except IntegrityError as exc:  # a number taken between the check and the insert
            raise HostRecordError("order_number", row.order_number, "is already used in this tenant") from exc

    def _order_columns(self, values: Mapping[str, object], *, creating: bool, row: Any = None) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for field, value in values.items():
            if field in ("order_date", "value", "currency"):
                continue  # refused above when set; nothing to store
            if field == "name":
                columns["name"] = check_text(field, value, Orders, "name", required=True)
            elif field == "order_number":
                number = check_text(field, value, Orders, "order_number").strip()
                taken = self._orders().filter(order_number=number)
                if number and (taken.exclude(pk=row.pk) if row is not None else taken).exists():
                    raise HostRecordError(field, value, "is already used in this tenant")
                if number or creating:
                    columns["order_number"] = number
            elif field == "order_status":
                try:
                    columns["order_status"] = OrderStatus(value).value
                except ValueError as exc:
                    raise HostRecordError(field, value, "is not an order status") from exc
            elif field == "company_id":
                columns["company_id"] = self._reference(field, value, self._companies(), uuid_pk)
            elif field == "customer_id":
                columns["customer_id"] = self._reference(field, value, self._users(), int_pk)
            elif field == "estimated_completion":
                columns[field] = check_date(field, value)
            elif field == "current_milestone":
                columns["current_milestone_id"] = self._milestone(value)
            elif field == "archived":
                columns["archived"] = bool(value)
            elif field == "external_id":
                external_id = check_external_id(value, Orders)
                if not creating and external_id is not None and self._orders().filter(
                        external_id=external_id).exclude(pk=row.pk).exists():
                    raise HostRecordError(field, value, "is already used by another order")
                columns["external_id"] = external_id
        return columns

    def _reference(self, field: str, value: object, rows: Any, to_pk: Any) -> Any:
        if value is None:
            return None
        pk = to_pk(value)
        if pk is None or not rows.filter(pk=pk).exists():
            raise HostRecordError(field, value, "names no record of this tenant")
        return pk

    def _milestone(self, value: object) -> Any:
        """The pk of a milestone of this tenant given as a :class:`Milestone` or its id."""
        if value is None:
            return None
        pk = uuid_pk(value.id if isinstance(value, MilestoneRecord) else value)
        found = None if pk is None else Milestone.objects.using(self._db).filter(pk=pk).first()
        if found is None:
            raise HostRecordError("current_milestone", value, "names no milestone of this tenant")
        return found.pk

    # Companies ------------------------------------------------------------------------------

    def get_company(self, company_id: str) -> Company | None:
        pk = uuid_pk(company_id)
        with self._read():
            row = None if pk is None else self._companies().filter(pk=pk).first()
            return None if row is None else company_record(row)

    def find_companies_by_name(self, name: str) -> list[Company]:
        with self._read():
            rows = self._companies().filter(name__iexact=name, is_current_version=True).order_by("created_at")
            return [company_record(row) for row in rows]

    def find_companies_by_domain(self, domain: str) -> list[Company]:
        return []  # Ambac Tracker's companies have no website (see capabilities())

    def create_company(self, draft: CompanyDraft) -> Company:
        refuse_missing_fields({"website": draft.website, "phone": draft.phone, "address": draft.address},
                              COMPANY_FIELDS_KEPT, "companies")
        columns = self._company_columns({"name": draft.name, "description": draft.description,
                                         "external_id": draft.external_id})
        with self._write():
            external_id = columns["external_id"]
            if external_id is not None:
                self._serialise_creates("company", external_id)
                existing = self._current_company_by_external_id(external_id)
                if existing is not None:
                    return company_record(existing)
            row = Companies(tenant_id=self._tenant_id, **columns)
            row.save(using=self._db, force_insert=True)
            return company_record(row)

    def update_company(self, company_id: str, changes: Mapping[str, object]) -> Company:
        """Set the named fields; the host versions companies, so a change is saved as a new
        row (a new id) and that current version is returned."""
        unknown = set(changes) - COMPANY_FIELDS_KEPT - {"website", "phone", "address"}
        if unknown:
            raise ValueError(f"update_company cannot set {sorted(unknown)}")
        refuse_missing_fields(changes, COMPANY_FIELDS_KEPT, "companies")
        columns = self._company_columns({k: v for k, v in changes.items() if k in COMPANY_FIELDS_KEPT})
        with self._write():
            pk = uuid_pk(company_id)
            row = None if pk is None else self._companies().select_for_update().filter(pk=pk).first()
            if row is None:
                raise HostRecordError("id", company_id, "no such company in this tenant")
            row = self._current_version(row)
            external_id = columns.get("external_id")
            if external_id is not None:
                other = self._current_company_by_external_id(external_id)
                if other is not None and other.pk != row.pk:
                    raise HostRecordError("external_id", external_id, "is already used by another company")
            changed = {k: v for k, v in columns.items() if getattr(row, k) != v}
            if not changed:
                return company_record(row)
            return company_record(row.create_new_version(**changed))

    def _current_version(self, row: Any) -> Any:
        """The current version of a company row, locked: an update of a version superseded since
        (the plugin's link still on it, the host's own edit not pushed yet) goes to the newest
        one, instead of making a second current version from the old row and losing that edit.
        A row still current (a copy made without superseding it included) is itself."""
        for _depth in range(100):
            if row.is_current_version:
                return row
            newer = (self._companies().select_for_update().filter(previous_version_id=row.pk)
                     .order_by("-is_current_version", "created_at", "pk").first())
            if newer is None:
                return row
            row = newer
        return row

    def _current_company_by_external_id(self, external_id: str) -> Any:
        return (self._companies().filter(external_id=external_id, is_current_version=True)
                .order_by("created_at", "pk").first())

    def _company_columns(self, values: Mapping[str, object]) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        if "name" in values:
            columns["name"] = check_text("name", values["name"], Companies, "name", required=True)
        if "description" in values:
            columns["description"] = check_text("description", values["description"], Companies, "description")
        if "external_id" in values:
            columns["external_id"] = check_external_id(values["external_id"], Companies)
        return columns

    # Contacts -------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> Contact | None:
        pk = int_pk(contact_id)
        with self._read():
            row = None if pk is None else self._users().filter(pk=pk).first()
            return None if row is None else contact_record(row)

    def find_contacts_by_email(self, email: str) -> list[Contact]:
        with self._read():
            return [contact_record(row) for row in self._users().filter(email__iexact=email).order_by("pk")]

    def create_contact(self, draft: ContactDraft) -> Contact:
        columns = self._contact_columns({"email": draft.email, "first_name": draft.first_name,
                                         "last_name": draft.last_name,
                                         "parent_company_id": draft.parent_company_id})
        with self._write():
            if "parent_company_id" in columns:
                columns["parent_company_id"] = self._reference(
                    "parent_company_id", columns["parent_company_id"], self._companies(), uuid_pk)
            group, _ = TenantGroup.objects.using(self._db).get_or_create(
                tenant_id=self._tenant_id, name=CUSTOMER_GROUP)
            row = self._insert_user(columns)
            UserRole.objects.using(self._db).create(user=row, group=group)
            return contact_record(row)

    def _insert_user(self, columns: dict[str, Any]) -> Any:
        """Insert a PORTAL user under the first free ``<tenant>-<email local part>-<n>``."""
        local = str(columns["email"]).partition("@")[0] or "contact"
        base = _USERNAME_UNSAFE.sub("_", f"{self._tenant_id}-{local}")[:130]
        serial = self._users().filter(username__startswith=f"{base}-").count() + 1
        while True:
            # The UUID, not its text: the host's save compares it with the company's tenant_id.
            row = User(tenant_id=uuid_pk(self._tenant_id), user_type=User.UserType.PORTAL,
                       username=f"{base}-{serial}", **columns)
            row.set_unusable_password()
            try:
                with transaction.atomic(using=self._db):
                    row.save(using=self._db, force_insert=True)
                return row
            except IntegrityError:  # another worker took this username first
                serial += 1

    def update_contact(self, contact_id: str, changes: Mapping[str, object]) -> Contact:
        unknown = set(changes) - {"email", "first_name", "last_name", "parent_company_id"}
        if unknown:
            raise ValueError(f"update_contact cannot set {sorted(unknown)}: username and user_type are the host's")
        columns = self._contact_columns(changes)
        with self._write():
            pk = int_pk(contact_id)
            row = None if pk is None else self._users().select_for_update().filter(pk=pk).first()
            if row is None:
                raise HostRecordError("id", contact_id, "no such contact in this tenant")
            if "parent_company_id" in columns:
                columns["parent_company_id"] = self._reference(
                    "parent_company_id", columns["parent_company_id"], self._companies(), uuid_pk)
            for column, value in columns.items():
                setattr(row, column, value)
            row.save(using=self._db, update_fields=list(columns) or None)
            return contact_record(row)

    def _contact_columns(self, values: Mapping[str, object]) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for field, value in values.items():
            if field == "parent_company_id":
                columns[field] = value
            elif field == "email":
                columns[field] = check_text(field, value, User, "email", required=True)
            else:
                columns[field] = check_text(field, value, User, field)
        return columns

    # Users, permissions, notifications ------------------------------------------------------

    def current_user(self) -> UserRecord | None:
        user = _acting_user.get()
        return user if user is not None and user.tenant_id == self._tenant_id else None

    def has_permission(self, user: UserRecord, permission: str) -> bool:
        pk = int_pk(user.id)
        if user.tenant_id != self._tenant_id or pk is None:
            return False
        with self._read():
            row = self._users().filter(pk=pk).first()
            tenant = Tenant.objects.using(self._db).filter(pk=uuid_pk(self._tenant_id)).first()
            # The host's check reads ``tenant.id``: it takes the Tenant row, not an id.
            return row is not None and tenant is not None and bool(row.has_tenant_perm(permission, tenant))

    def notify_admins(self, subject: str, message: str, level: str) -> None:
        if level not in NOTIFICATION_LEVELS:
            raise ValueError(f"level must be one of {', '.join(NOTIFICATION_LEVELS)}, not {level!r}")
        with self._write():
            tenant = Tenant.objects.using(self._db).get(pk=self._tenant_id)
            emit(ALERT_EVENT_CODE, tenant, alert_payload(subject, message, level))


def user_record(row: Any) -> UserRecord:
    """A host ``User`` row as the contract's :class:`~ambac_hubspot_plugin.host.User`."""
    name = " ".join(part for part in (row.first_name, row.last_name) if part)
    return UserRecord(id=row.pk, tenant_id=row.tenant_id, email=row.email, name=name)

