"""The ``HostServices`` conformance suite: one set of tests any implementation must pass.

It checks only what the contract promises: the docstrings of :class:`HostServices` and the
records in :mod:`ambac_hubspot_plugin.host`, and ``docs/hooks.md``. It knows nothing of a
particular host; a binding gives it one through a ``host_under_test`` fixture returning a
:class:`HostUnderTest`, and subclasses :class:`HostServicesConformance` (pytest collects the
subclass, whose name starts with ``Test``)::

    class TestMyHostConformance(HostServicesConformance):
        @pytest.fixture
        def host_under_test(self, tmp_path) -> Iterator[HostUnderTest]:
            ...

``tests/test_conformance_reference_host.py`` binds it to the reference host; a host's own
bridge (e.g. the Django one) binds it to the real host's adapter the same way.

A host's :meth:`HostServices.capabilities` say which optional fields it keeps. An order field
the host lacks must be refused, one it keeps must round-trip, and milestones (a host-side
template; the binding sets an order's milestone) must read back with their place in the
template. A company's website, phone and address are written and compared only where the host
keeps them, and refused (a :class:`HostRecordError` naming the field) where it does not.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from ambac_hubspot_plugin.errors import HostRecordError
from ambac_hubspot_plugin.host import (
    COMPANY_FIELDS,
    COMPANY_NAME_MAX,
    EXTERNAL_ID_MAX,
    MANAGE_INTEGRATIONS,
    ORDER_FIELDS,
    ORDER_NAME_MAX,
    ORDER_NUMBER_MAX,
    PERMISSIONS,
    VIEW_INTEGRATIONS,
    Address,
    CompanyDraft,
    ContactDraft,
    GroupsWrites,
    HostCapabilities,
    HostServices,
    Milestone,
    OrderDraft,
    OrderStatus,
    User,
    UserType,
    as_host_id,
    hookimpl,
)
from ambac_hubspot_plugin.mapping import normalize_domain

__all__ = ["EventRecorder", "HostServicesConformance", "HostUnderTest"]

T = TypeVar("T")


class HostUnderTest(Protocol):
    """What the suite needs of a host beyond the services: tenants, users, and what it records.

    The contract gives plugins no way to create tenants or users, to read order notes or admin
    notifications, nor to see which hooks fired, so each binding supplies them.
    """

    def new_tenant(self) -> HostServices:
        """Create a tenant and return fresh services scoped to it."""

    def create_user(self, services: HostServices, permissions: Iterable[str] = ()) -> User:
        """Create a staff user of the services' tenant holding exactly ``permissions`` there."""

    def acting_as(self, user: User) -> AbstractContextManager[object]:
        """Make ``user`` the one performing the current admin operation inside the block."""

    def order_notes(self, services: HostServices, order_id: str) -> Sequence[str]:
        """Return the texts of the internal notes of an order of the services' tenant, oldest first."""

    def notifications(self, services: HostServices) -> Sequence[tuple[str, str, str]]:
        """Return ``(subject, message, level)`` of the tenant's admin notifications, oldest first."""

    def fired_events(self) -> Sequence[str]:
        """Return the names of the ``ambac_*`` hooks the host has called, in call order."""

    def user_groups(self, services: HostServices, user_id: str) -> Collection[str]:
        """Return the names of the tenant groups a user of the services' tenant belongs to."""

    def milestone_template(self, services: HostServices, steps: Sequence[str]) -> Sequence[str]:
        """Create a milestone template of ``steps`` (in order) in the services' tenant; return
        the ids of its milestones, first step first. Called only when the host has milestones."""

    def set_order_milestone(self, services: HostServices, order_id: str, milestone_id: str) -> None:
        """Move an order of the services' tenant to a milestone, as the host's users do."""


# Order fields a host may lack, with a value of the right type for each.
_OPTIONAL_ORDER_VALUES: dict[str, object] = {
    "value": Decimal("1250.50"), "currency": "EUR", "order_date": date(2026, 11, 2)}


class EventRecorder:
    """A plugin recording the name of every ``ambac_*`` event hook its plugin manager calls;
    a binding registers one in its host's manager to answer ``fired_events``."""

    def __init__(self) -> None:
        self.fired: list[str] = []

    @hookimpl
    def ambac_order_status_changed(self, **kwargs: Any) -> None:
        self.fired.append("ambac_order_status_changed")

    @hookimpl
    def ambac_order_updated(self, **kwargs: Any) -> None:
        self.fired.append("ambac_order_updated")

    @hookimpl
    def ambac_order_shipped(self, **kwargs: Any) -> None:
        self.fired.append("ambac_order_shipped")

    @hookimpl
    def ambac_company_saved(self, **kwargs: Any) -> None:
        self.fired.append("ambac_company_saved")


MISSING_IDS = ("0192f4c3-8d7e-7cc1-9b1a-3f2e1d0c4b5a", "987654321")
"""Ids no record holds: a UUID and an integer-looking one. A host keyed by either kind must
answer both as "not found", never with an error about the id's form."""


def _together(count: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` in ``count`` threads released at once; return the results, re-raising errors."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            value = work()
        except BaseException as exc:  # reported below, in the test's thread
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a create never returned"
    if errors:
        raise errors[0]
    return results


class HostServicesConformance:
    """The tests; a binding subclasses this and provides the ``host_under_test`` fixture."""

    @pytest.fixture
    def services(self, host_under_test: HostUnderTest) -> HostServices:
        """Fresh services of one tenant."""
        return host_under_test.new_tenant()

    @pytest.fixture
    def other(self, host_under_test: HostUnderTest) -> HostServices:
        """Fresh services of a second tenant, for isolation checks."""
        return host_under_test.new_tenant()

    # Scope ---------------------------------------------------------------------------------

    def test_services_are_host_services_scoped_to_their_tenant(
        self, services: HostServices, other: HostServices
    ) -> None:
        """Each tenant's services satisfy the Protocol and report their own tenant id."""
        assert isinstance(services, HostServices)
        assert isinstance(other, HostServices)
        assert services.tenant_id != other.tenant_id

    def test_for_tenant_scopes_the_same_services_to_another_tenant(
        self, services: HostServices, other: HostServices
    ) -> None:
        """``for_tenant`` gives services that read the other tenant's rows and not this one's."""
        mine = services.create_order(OrderDraft(name="Mine", external_id="scope-mine"))
        theirs = other.create_order(OrderDraft(name="Theirs", external_id="scope-theirs"))

        switched = services.for_tenant(other.tenant_id)

        assert switched.tenant_id == other.tenant_id
        assert switched.get_order(theirs.id) == theirs
        assert switched.get_order(mine.id) is None
        assert switched.for_tenant(services.tenant_id).get_order(mine.id) == mine

    def test_every_id_is_a_host_id_string(self, services: HostServices) -> None:
        """The tenant and every record's ids are strings the plugin can keep as they are
        (``as_host_id`` leaves them unchanged): a UUID's text or an integer's digits."""
        order = services.create_order(OrderDraft(name="Ids"))
        contact = services.create_contact(ContactDraft(email="ids@acme.example"))

        for value in (services.tenant_id, order.id, order.tenant_id, contact.id, contact.tenant_id):
            assert isinstance(value, str) and as_host_id(value) == value
        assert order.tenant_id == contact.tenant_id == services.tenant_id

    def test_plugin_data_dir_is_a_stable_writable_directory(self, services: HostServices) -> None:
        """``plugin_data_dir`` returns an existing directory a plugin can write to, the same each time."""
        first = Path(services.plugin_data_dir("conformance"))
        (first / "probe.txt").write_text("kept")

        second = Path(services.plugin_data_dir("conformance"))

        assert first.is_dir()
        assert second == first
        assert (second / "probe.txt").read_text() == "kept"

    def test_a_tenant_never_reads_another_tenants_rows(
        self, services: HostServices, other: HostServices
    ) -> None:
        """No read method of one tenant returns another tenant's orders, companies or contacts."""
        website = "https://acme.example" if "website" in services.capabilities().company_fields else ""
        company = services.create_company(
            CompanyDraft(name="Acme", website=website, external_id="co-1")
        )
        contact = services.create_contact(
            ContactDraft(email="ann@acme.example", parent_company_id=company.id)
        )
        order = services.create_order(
            OrderDraft(name="Bracket", external_id="deal-1", company_id=company.id)
        )
        services.update_order(order.id, {"archived": True})

        assert other.get_order(order.id) is None
        assert list(other.get_orders([order.id])) == []
        assert other.find_order_by_external_id("deal-1") is None
        assert other.get_company(company.id) is None
        assert list(other.find_companies_by_name("Acme")) == []
        assert list(other.find_companies_by_domain("acme.example")) == []
        assert other.get_contact(contact.id) is None
        assert list(other.find_contacts_by_email("ann@acme.example")) == []

    def test_a_tenant_never_writes_another_tenants_rows(
        self, host_under_test: HostUnderTest, services: HostServices, other: HostServices
    ) -> None:
        """Updating another tenant's record raises HostRecordError for ``id`` and changes nothing."""
        company = services.create_company(CompanyDraft(name="Acme"))
        contact = services.create_contact(ContactDraft(email="ann@acme.example"))
        order = services.create_order(OrderDraft(name="Bracket"))
        services.add_order_note(order.id, "first")

        for update, record_id, changes in (
            (other.update_order, order.id, {"name": "Stolen"}),
            (other.update_company, company.id, {"name": "Stolen"}),
            (other.update_contact, contact.id, {"first_name": "Eve"}),
        ):
            with pytest.raises(HostRecordError) as refused:
                update(record_id, changes)
            assert refused.value.field == "id"
        with contextlib.suppress(HostRecordError):  # refusing or ignoring are both in scope
            other.add_order_note(order.id, "not yours")

        assert services.get_order(order.id) == order
        assert services.get_company(company.id) == company
        assert services.get_contact(contact.id) == contact
        assert list(host_under_test.order_notes(services, order.id)) == ["first"]

    def test_a_record_cannot_point_at_another_tenants_rows(
        self, services: HostServices, other: HostServices
    ) -> None:
        """An order's company or customer, or a contact's company, of another tenant is refused."""
        company = services.create_company(CompanyDraft(name="Acme"))
        contact = services.create_contact(ContactDraft(email="ann@acme.example"))

        for draft, field in (
            (OrderDraft(name="x", company_id=company.id, external_id="ref-1"), "company_id"),
            (OrderDraft(name="x", customer_id=contact.id, external_id="ref-2"), "customer_id"),
        ):
            with pytest.raises(HostRecordError) as refused:
                other.create_order(draft)
            assert refused.value.field == field
            assert other.find_order_by_external_id(str(draft.external_id)) is None
        with pytest.raises(HostRecordError) as refused:
            other.create_contact(
                ContactDraft(email="eve@other.example", parent_company_id=company.id)
            )
        assert refused.value.field == "parent_company_id"
        assert list(other.find_contacts_by_email("eve@other.example")) == []

    def test_unique_values_are_unique_per_tenant_only(
        self, services: HostServices, other: HostServices
    ) -> None:
        """Another tenant may reuse an order number, an external id or a contact email (emails
        are not unique even in one tenant, but usernames are unique across all)."""
        order = services.create_order(OrderDraft(name="A", order_number="PO-1", external_id="d-1"))
        company = services.create_company(CompanyDraft(name="Acme", external_id="c-1"))
        contact = services.create_contact(ContactDraft(email="ann@acme.example"))

        their_order = other.create_order(
            OrderDraft(name="B", order_number="PO-1", external_id="d-1")
        )
        their_company = other.create_company(CompanyDraft(name="Acme B", external_id="c-1"))
        their_contact = other.create_contact(ContactDraft(email="ann@acme.example"))

        assert (their_order.tenant_id, their_order.name) == (other.tenant_id, "B")
        assert their_order.id != order.id
        assert (their_company.tenant_id, their_company.name) == (other.tenant_id, "Acme B")
        assert their_company.id != company.id
        assert their_contact.tenant_id == other.tenant_id
        assert their_contact.id != contact.id
        assert their_contact.username != contact.username
        assert services.get_order(order.id) == order

    # Orders --------------------------------------------------------------------------------

    def test_create_order_returns_the_order_as_drafted(self, services: HostServices) -> None:
        """A created order carries the draft's values, is not archived, and reads back equal."""
        company = services.create_company(CompanyDraft(name="Acme"))
        customer = services.create_contact(ContactDraft(email="ann@acme.example"))
        draft = OrderDraft(
            name="Bracket",
            order_number="PO-7",
            order_status=OrderStatus.IN_PROGRESS,
            company_id=company.id,
            customer_id=customer.id,
            estimated_completion=date(2026, 5, 1),
            customer_note="Deliver to gate 2",
            external_id="deal-7",
        )

        order = services.create_order(draft)

        assert order.tenant_id == services.tenant_id
        assert (order.name, order.order_number, order.order_status) == (
            "Bracket", "PO-7", OrderStatus.IN_PROGRESS,
        )
        assert (order.company_id, order.customer_id) == (company.id, customer.id)
        assert order.estimated_completion == date(2026, 5, 1)
        assert order.customer_note == "Deliver to gate 2"
        assert (order.external_id, order.archived) == ("deal-7", False)
        assert isinstance(order.created_at, datetime)
        assert isinstance(order.updated_at, datetime)
        assert services.get_order(order.id) == order
        assert services.find_order_by_external_id("deal-7") == order

    def test_a_blank_order_number_is_numbered_by_the_host(self, services: HostServices) -> None:
        """Orders drafted without a number get distinct numbers within the host's limit."""
        first = services.create_order(OrderDraft(name="One"))
        second = services.create_order(OrderDraft(name="Two"))

        for order in (first, second):
            assert order.order_number.strip()
            assert len(order.order_number) <= ORDER_NUMBER_MAX
        assert first.order_number != second.order_number

    def test_order_values_at_the_limits_are_accepted(self, services: HostServices) -> None:
        """An order number, name and external id exactly at the contract's limits are stored whole."""
        draft = OrderDraft(
            name="n" * ORDER_NAME_MAX,
            order_number="N" * ORDER_NUMBER_MAX,
            external_id="e" * EXTERNAL_ID_MAX,
        )

        order = services.create_order(draft)

        assert (order.name, order.order_number, order.external_id) == (
            draft.name, draft.order_number, draft.external_id,
        )

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("order_number", "N" * (ORDER_NUMBER_MAX + 1)),
            ("name", "n" * (ORDER_NAME_MAX + 1)),
            ("external_id", "e" * (EXTERNAL_ID_MAX + 1)),
        ],
    )
    def test_create_order_refuses_values_over_the_limits(
        self, services: HostServices, field: str, value: str
    ) -> None:
        """A draft over a field limit raises HostRecordError naming the field and creates nothing."""
        values: dict[str, Any] = {"name": "Bracket", "external_id": "deal-over", field: value}

        with pytest.raises(HostRecordError) as refused:
            services.create_order(OrderDraft(**values))

        assert refused.value.field == field
        assert services.find_order_by_external_id(values["external_id"]) is None

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("order_number", "N" * (ORDER_NUMBER_MAX + 1)),
            ("name", "n" * (ORDER_NAME_MAX + 1)),
            ("external_id", "e" * (EXTERNAL_ID_MAX + 1)),
        ],
    )
    def test_update_order_refuses_values_over_the_limits_and_writes_nothing(
        self, services: HostServices, field: str, value: str
    ) -> None:
        """An update with one value over a limit names the field and leaves every field as it was."""
        order = services.create_order(OrderDraft(name="Bracket", external_id="deal-1"))
        changes: dict[str, object] = {"order_status": OrderStatus.ON_HOLD, field: value}
        if field != "name":
            changes["name"] = "Renamed"

        with pytest.raises(HostRecordError) as refused:
            services.update_order(order.id, changes)

        assert refused.value.field == field
        assert services.get_order(order.id) == order

    def test_order_numbers_are_unique_per_tenant(self, services: HostServices) -> None:
        """A second order with a number in use, by create or update, is refused for ``order_number``."""
        first = services.create_order(OrderDraft(name="One", order_number="PO-1"))
        second = services.create_order(OrderDraft(name="Two", order_number="PO-2"))

        with pytest.raises(HostRecordError) as on_create:
            services.create_order(OrderDraft(name="Dup", order_number="PO-1", external_id="dup"))
        with pytest.raises(HostRecordError) as on_update:
            services.update_order(second.id, {"order_number": "PO-1", "name": "Renamed"})

        assert on_create.value.field == on_update.value.field == "order_number"
        assert services.find_order_by_external_id("dup") is None
        assert services.get_order(first.id) == first
        assert services.get_order(second.id) == second

    def test_create_order_with_a_known_external_id_returns_it_unchanged(
        self, services: HostServices
    ) -> None:
        """Creating again with an external id in use returns the existing order as it is."""
        first = services.create_order(OrderDraft(name="Original", external_id="deal-1"))

        again = services.create_order(
            OrderDraft(name="Other", order_status=OrderStatus.COMPLETED, external_id="deal-1")
        )

        assert again == first
        assert services.get_order(first.id) == first

    def test_a_retried_create_with_its_order_number_returns_the_order(self, services: HostServices) -> None:
        """Creating again a draft with an order number and an external id, as a worker retrying
        after a crash does, returns the order created first rather than refusing its number."""
        draft = OrderDraft(name="Bracket", order_number="PO-9", external_id="deal-9")
        first = services.create_order(draft)

        again = services.create_order(draft)

        assert again == first

    def test_concurrent_creates_with_one_external_id_make_one_order(
        self, services: HostServices
    ) -> None:
        """Workers creating the same external id at once all get one and the same order."""
        orders = _together(
            4, lambda: services.create_order(OrderDraft(name="Raced", external_id="deal-race"))
        )

        assert len({order.id for order in orders}) == 1
        assert services.find_order_by_external_id("deal-race") == orders[0]

    def test_update_order_sets_the_named_fields_only(self, services: HostServices) -> None:
        """``update_order`` changes exactly the named fields and returns the order as read back."""
        company = services.create_company(CompanyDraft(name="Acme"))
        order = services.create_order(
            OrderDraft(name="Bracket", order_number="PO-1", customer_note="Keep me",
                       external_id="deal-1")
        )

        updated = services.update_order(
            order.id,
            {
                "name": "Bracket v2",
                "order_status": OrderStatus.IN_PROGRESS,
                "estimated_completion": date(2026, 6, 30),
                "company_id": company.id,
            },
        )

        assert (updated.name, updated.order_status) == ("Bracket v2", OrderStatus.IN_PROGRESS)
        assert (updated.estimated_completion, updated.company_id) == (date(2026, 6, 30), company.id)
        assert (updated.id, updated.order_number, updated.external_id) == (
            order.id, "PO-1", "deal-1",
        )
        assert (updated.customer_note, updated.created_at) == ("Keep me", order.created_at)
        assert services.get_order(order.id) == updated

    @pytest.mark.parametrize("status", list(OrderStatus))
    def test_every_order_status_round_trips(
        self, services: HostServices, status: OrderStatus
    ) -> None:
        """Each of the contract's order statuses is stored and read back as that status."""
        order = services.create_order(OrderDraft(name="Bracket"))

        updated = services.update_order(order.id, {"order_status": status})

        assert updated.order_status is status
        assert services.get_order(order.id) == updated

    # Capabilities and milestones -----------------------------------------------------------

    def test_capabilities_name_contract_fields_and_the_fields_every_host_has(
        self, services: HostServices
    ) -> None:
        """``capabilities()`` is a HostCapabilities whose order fields are contract fields,
        the ones every host has among them."""
        capabilities = services.capabilities()
        assert isinstance(capabilities, HostCapabilities)
        assert capabilities.order_fields <= ORDER_FIELDS
        assert {"name", "order_number", "order_status", "external_id", "archived",
                "customer_note"} <= capabilities.order_fields

    @pytest.mark.parametrize("field", sorted(_OPTIONAL_ORDER_VALUES))
    def test_an_order_field_the_host_lacks_is_refused_and_one_it_keeps_round_trips(
        self, services: HostServices, field: str
    ) -> None:
        """Creating or updating an order with a field the host lacks raises HostRecordError
        naming it and writes nothing; a field it keeps reads back as written."""
        value = _OPTIONAL_ORDER_VALUES[field]
        kept = field in services.capabilities().order_fields
        existing = services.create_order(OrderDraft(name="Existing"))
        if not kept:
            with pytest.raises(HostRecordError) as created:
                services.create_order(OrderDraft(name="Bracket", external_id="deal-1", **{field: value}))
            assert created.value.field == field
            assert services.find_order_by_external_id("deal-1") is None
            with pytest.raises(HostRecordError) as updated:
                services.update_order(existing.id, {field: value})
            assert updated.value.field == field
            assert services.get_order(existing.id) == existing
            return
        order = services.create_order(OrderDraft(name="Bracket", **{field: value}))
        assert getattr(order, field) == value
        assert getattr(services.update_order(existing.id, {field: value}), field) == value

    def test_an_order_reads_back_its_milestone_with_its_place_in_the_template(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """A new order has no milestone; one at the second of three steps reads back that
        step, position 2 of 3, through every read; a host without milestones gives None."""
        order = services.create_order(OrderDraft(name="Bracket"))
        assert order.current_milestone is None
        if not services.capabilities().milestones:
            return
        ids = host_under_test.milestone_template(services, ["Kickoff", "Machining", "Inspection"])
        host_under_test.set_order_milestone(services, order.id, ids[1])
        expected = Milestone(id=ids[1], name="Machining", position=2, count=3)
        read = services.get_order(order.id)
        assert read is not None and read.current_milestone == expected
        assert [o.current_milestone for o in services.get_orders([order.id])] == [expected]
        assert services.update_order(order.id, {"name": "Bracket v2"}).current_milestone == expected

    @pytest.mark.parametrize("missing", MISSING_IDS)
    def test_unknown_ids_read_as_none(self, services: HostServices, missing: str) -> None:
        """``get_*`` and ``find_*`` of ids, external ids or emails no record holds find nothing,
        whether the id looks like a UUID or an integer."""
        services.create_order(OrderDraft(name="Bracket"))

        assert services.get_order(missing) is None
        assert services.find_order_by_external_id("no-such-deal") is None
        assert services.get_company(missing) is None
        assert services.get_contact(missing) is None
        assert list(services.find_contacts_by_email("nobody@nowhere.example")) == []
        assert list(services.find_companies_by_name("No Such Company")) == []

    @pytest.mark.parametrize("missing", MISSING_IDS)
    @pytest.mark.parametrize("method", ["update_order", "update_company", "update_contact"])
    def test_updating_a_missing_record_names_the_id(
        self, services: HostServices, method: str, missing: str
    ) -> None:
        """``update_*`` of a record that does not exist raises HostRecordError for ``id``."""
        changes = {"first_name": "Ann"} if method == "update_contact" else {"name": "x"}

        with pytest.raises(HostRecordError) as refused:
            getattr(services, method)(missing, changes)

        assert refused.value.field == "id"

    def test_get_orders_returns_the_known_orders_of_many_ids(self, services: HostServices) -> None:
        """``get_orders`` of more ids than one query takes returns each known order once, archived too."""
        orders = [services.create_order(OrderDraft(name=f"Order {i}")) for i in range(600)]
        archived = services.update_order(orders[0].id, {"archived": True})
        wanted = [order.id for order in reversed(orders)] + list(MISSING_IDS)

        found = {order.id: order for order in services.get_orders(wanted)}

        assert len(found) == len(list(services.get_orders(wanted))) == 600
        assert found == {order.id: order for order in [archived, *orders[1:]]}

    def test_archived_orders_stay_readable_and_create_never_unarchives(
        self, services: HostServices
    ) -> None:
        """An archived order is still returned by every order read, and a create by its external id
        returns it still archived."""
        order = services.create_order(OrderDraft(name="Bracket", external_id="deal-1"))

        archived = services.update_order(order.id, {"archived": True})
        again = services.create_order(OrderDraft(name="Bracket", external_id="deal-1"))

        assert archived.archived
        assert services.get_order(order.id) == archived
        assert list(services.get_orders([order.id])) == [archived]
        assert services.find_order_by_external_id("deal-1") == archived
        assert again == archived

    def test_order_notes_are_added_without_overwriting(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """Each note is added after the earlier ones, and the customer note keeps its text."""
        order = services.create_order(OrderDraft(name="Bracket", customer_note="Gate 2 only"))

        services.add_order_note(order.id, "Deal moved to Closed won")
        services.add_order_note(order.id, "Shipped by HubSpot user")

        assert list(host_under_test.order_notes(services, order.id)) == [
            "Deal moved to Closed won", "Shipped by HubSpot user",
        ]
        current = services.get_order(order.id)
        assert current is not None
        assert "Gate 2 only" in current.customer_note

    # Companies -----------------------------------------------------------------------------

    def test_create_company_returns_the_company_as_drafted(self, services: HostServices) -> None:
        """A created company carries the draft's name, description and external id, and reads back equal."""
        company = services.create_company(
            CompanyDraft(name="Acme Machining", description="Lathes", external_id="co-1")
        )

        assert company.tenant_id == services.tenant_id
        assert (company.name, company.description, company.external_id) == (
            "Acme Machining", "Lathes", "co-1",
        )
        assert isinstance(company.updated_at, datetime)
        assert services.get_company(company.id) == company

    def test_company_name_limit_is_kept(self, services: HostServices) -> None:
        """A name at the limit is stored; one character more raises HostRecordError for ``name``."""
        at_limit = services.create_company(CompanyDraft(name="c" * COMPANY_NAME_MAX))
        over = "c" * (COMPANY_NAME_MAX + 1)

        with pytest.raises(HostRecordError) as on_create:
            services.create_company(CompanyDraft(name=over))
        with pytest.raises(HostRecordError) as on_update:
            services.update_company(at_limit.id, {"name": over, "description": "changed"})

        assert at_limit.name == "c" * COMPANY_NAME_MAX
        assert on_create.value.field == on_update.value.field == "name"
        assert list(services.find_companies_by_name(over)) == []
        assert services.get_company(at_limit.id) == at_limit

    def test_company_external_id_limit_is_kept(self, services: HostServices) -> None:
        """An external id over the limit raises HostRecordError for ``external_id`` and creates nothing."""
        with pytest.raises(HostRecordError) as refused:
            services.create_company(
                CompanyDraft(name="Overlong", external_id="e" * (EXTERNAL_ID_MAX + 1))
            )

        assert refused.value.field == "external_id"
        assert list(services.find_companies_by_name("Overlong")) == []

    def test_create_company_with_a_known_external_id_returns_it_unchanged(
        self, services: HostServices
    ) -> None:
        """Creating again with an external id in use returns the existing company as it is."""
        first = services.create_company(CompanyDraft(name="Acme", external_id="co-1"))

        again = services.create_company(CompanyDraft(name="Acme Renamed", external_id="co-1"))

        assert again == first
        assert list(services.find_companies_by_name("Acme Renamed")) == []

    def test_concurrent_company_creates_with_one_external_id_make_one_company(
        self, services: HostServices
    ) -> None:
        """Workers creating the same external id at once all get one and the same company."""
        companies = _together(
            4, lambda: services.create_company(CompanyDraft(name="Raced", external_id="co-race"))
        )

        assert len({company.id for company in companies}) == 1
        assert list(services.find_companies_by_name("Raced")) == [companies[0]]

    def test_find_companies_by_name_ignores_case_and_matches_whole_names(
        self, services: HostServices
    ) -> None:
        """Every company whose whole name equals the query ignoring case is found, no other."""
        first = services.create_company(CompanyDraft(name="Acme Machining"))
        second = services.create_company(CompanyDraft(name="ACME MACHINING"))
        services.create_company(CompanyDraft(name="Acme"))

        found = services.find_companies_by_name("acme machining")

        assert sorted(company.id for company in found) == sorted([first.id, second.id])

    def test_capabilities_are_a_host_capabilities_record(self, services: HostServices) -> None:
        """``capabilities()`` returns a HostCapabilities naming only contract fields; every host
        keeps a company's name and an order's name."""
        capabilities = services.capabilities()

        assert isinstance(capabilities, HostCapabilities)
        assert capabilities.company_fields <= COMPANY_FIELDS
        assert capabilities.order_fields <= ORDER_FIELDS
        assert "name" in capabilities.company_fields and "name" in capabilities.order_fields

    @pytest.mark.parametrize(("field", "value"), [
        ("website", "https://acme.example"), ("phone", "+1 555 0100"),
        ("address", Address(street="1 Main St", city="Springfield")),
    ])
    def test_a_company_field_the_host_lacks_is_refused_naming_it(
        self, services: HostServices, field: str, value: object
    ) -> None:
        """A non-empty value for a company field not in ``capabilities()`` is a HostRecordError
        naming the field, on create and on update, and nothing is written; a field the host
        keeps reads back as written."""
        kept = field in services.capabilities().company_fields
        company = services.create_company(CompanyDraft(name="Acme"))
        if kept:
            created = services.create_company(CompanyDraft(name="Kept", **{field: value}))  # type: ignore[arg-type]  # one CompanyDraft field
            assert getattr(created, field) == value
            assert getattr(services.update_company(company.id, {field: value}), field) == value
            return
        with pytest.raises(HostRecordError) as refused:
            services.create_company(CompanyDraft(name="Refused", **{field: value}))  # type: ignore[arg-type]  # one CompanyDraft field
        assert refused.value.field == field
        assert list(services.find_companies_by_name("Refused")) == []
        with pytest.raises(HostRecordError) as refused:
            services.update_company(company.id, {field: value, "description": "changed"})
        assert refused.value.field == field
        assert services.get_company(company.id) == company

    def test_a_company_description_may_be_empty(self, services: HostServices) -> None:
        """A description is required by the real host's schema but may be empty: ``""`` is kept."""
        company = services.create_company(CompanyDraft(name="Acme", description="Lathes"))

        updated = services.update_company(company.id, {"description": ""})

        assert updated.description == ""
        assert services.get_company(updated.id) == updated

    def test_find_companies_by_domain_matches_the_websites_domain(
        self, services: HostServices
    ) -> None:
        """A company is found by its website's normalised domain, and no other company is; a
        host whose companies have no website finds none (the plugin never asks it)."""
        if "website" not in services.capabilities().company_fields:
            services.create_company(CompanyDraft(name="Acme"))
            assert list(services.find_companies_by_domain("acme-machining.example")) == []
            return
        acme = services.create_company(
            CompanyDraft(name="Acme", website="https://www.Acme-Machining.example/contact")
        )
        services.create_company(CompanyDraft(name="Other", website="https://other.example"))

        found = services.find_companies_by_domain(normalize_domain(acme.website))

        assert list(found) == [acme]

    def test_update_company_sets_the_named_fields_only(self, services: HostServices) -> None:
        """``update_company`` changes exactly the named fields and returns the company as read back."""
        company = services.create_company(
            CompanyDraft(name="Acme", description="Lathes", external_id="co-1")
        )

        updated = services.update_company(company.id, {"description": "Lathes and mills"})

        assert (updated.name, updated.description, updated.external_id) == (
            "Acme", "Lathes and mills", "co-1",
        )
        assert services.get_company(updated.id) == updated
        # A host that answers with a new version (a new id) says which one it replaced: the
        # plugin follows previous_id from a version the host's own edits make to its link.
        assert updated.previous_id == (None if updated.id == company.id else company.id)

    # Contacts ------------------------------------------------------------------------------

    def test_create_contact_makes_a_portal_user(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """A created contact is a PORTAL user in the Customer group with the draft's values and a
        username the host chose, found by email in any case."""
        company = services.create_company(CompanyDraft(name="Acme"))

        contact = services.create_contact(
            ContactDraft(email="Ann@Acme.example", first_name="Ann", last_name="Lee",
                         parent_company_id=company.id)
        )

        assert contact.tenant_id == services.tenant_id
        assert contact.user_type is UserType.PORTAL
        assert "Customer" in host_under_test.user_groups(services, contact.id)
        assert contact.username.strip()
        assert (contact.email, contact.first_name, contact.last_name) == (
            "Ann@Acme.example", "Ann", "Lee",
        )
        assert contact.parent_company_id == company.id
        assert services.get_contact(contact.id) == contact
        assert list(services.find_contacts_by_email("ann@ACME.example")) == [contact]

    def test_several_users_may_share_an_email(self, services: HostServices) -> None:
        """Emails are not unique: create and update accept one in use, in any case, and
        ``find_contacts_by_email`` returns every user having it (in any order)."""
        ann = services.create_contact(ContactDraft(email="ann@acme.example", first_name="Ann"))
        bob = services.create_contact(ContactDraft(email="bob@acme.example"))

        twin = services.create_contact(ContactDraft(email="ANN@acme.example", first_name="Twin"))
        bob = services.update_contact(bob.id, {"email": "Ann@Acme.example", "first_name": "Bob"})

        found = list(services.find_contacts_by_email("ann@acme.example"))
        assert sorted(found, key=lambda c: c.id) == sorted([ann, twin, bob], key=lambda c: c.id)
        assert len({c.id for c in found}) == len({c.username for c in found}) == 3
        assert services.get_contact(ann.id) == ann

    def test_internal_users_are_found_by_email_but_are_no_customers(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """``find_contacts_by_email`` includes INTERNAL users; they are not in the Customer group."""
        staff = host_under_test.create_user(services)
        contact = services.create_contact(ContactDraft(email=staff.email.upper()))

        found = list(services.find_contacts_by_email(staff.email))

        assert [(c.id, c.user_type) for c in found] == sorted(
            [(staff.id, UserType.INTERNAL), (contact.id, UserType.PORTAL)]
        )
        assert "Customer" not in host_under_test.user_groups(services, staff.id)
        assert "Customer" in host_under_test.user_groups(services, contact.id)

    def test_usernames_never_collide_across_tenants(
        self, services: HostServices, other: HostServices
    ) -> None:
        """The host chooses usernames unique across every tenant, for the same email too."""
        made = [
            tenant.create_contact(ContactDraft(email=email))
            for tenant in (services, other, services, other)
            for email in ("ann@acme.example", "Ann@acme.example", "ann@other.example")
        ]

        assert len({contact.username for contact in made}) == len(made)
        assert {contact.tenant_id for contact in made} == {services.tenant_id, other.tenant_id}
        for contact in made:
            tenant = services if contact.tenant_id == services.tenant_id else other
            assert tenant.get_contact(contact.id) == contact

    def test_update_contact_sets_the_named_fields_only(self, services: HostServices) -> None:
        """``update_contact`` changes exactly the named fields and returns the contact as read back."""
        company = services.create_company(CompanyDraft(name="Acme"))
        contact = services.create_contact(ContactDraft(email="ann@acme.example", first_name="Ann"))

        updated = services.update_contact(
            contact.id, {"last_name": "Lee", "parent_company_id": company.id}
        )

        assert (updated.email, updated.first_name, updated.last_name) == (
            "ann@acme.example", "Ann", "Lee",
        )
        assert (updated.parent_company_id, updated.user_type) == (company.id, UserType.PORTAL)
        assert services.get_contact(contact.id) == updated
        assert list(services.find_contacts_by_email("ann@acme.example")) == [updated]

    def test_a_contact_may_change_the_case_of_its_own_email(self, services: HostServices) -> None:
        """Changing a contact's email keeps its id and username."""
        contact = services.create_contact(ContactDraft(email="ann@acme.example"))

        updated = services.update_contact(contact.id, {"email": "Ann@Acme.example"})

        assert (updated.id, updated.email) == (contact.id, "Ann@Acme.example")
        assert updated.username == contact.username
        assert list(services.find_contacts_by_email("ann@acme.example")) == [updated]

    # Users, permissions, notifications -----------------------------------------------------

    def test_current_user_is_the_actor_of_an_operation_else_none(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """``current_user`` is None in background work and the acting user inside an operation."""
        admin = host_under_test.create_user(services, [MANAGE_INTEGRATIONS])

        assert services.current_user() is None
        with host_under_test.acting_as(admin):
            assert services.current_user() == admin
        assert services.current_user() is None

    @pytest.mark.parametrize("granted", PERMISSIONS)
    def test_has_permission_answers_exactly_what_was_granted(
        self, host_under_test: HostUnderTest, services: HostServices, granted: str
    ) -> None:
        """A user holds the permissions granted in the tenant and no other."""
        holder = host_under_test.create_user(services, [granted])
        nobody = host_under_test.create_user(services)
        both = host_under_test.create_user(services, PERMISSIONS)

        for permission in PERMISSIONS:
            assert services.has_permission(holder, permission) is (permission == granted)
            assert services.has_permission(nobody, permission) is False
            assert services.has_permission(both, permission) is True
        assert services.has_permission(both, "delete_everything") is False

    def test_a_user_of_another_tenant_holds_no_permission_here(
        self, host_under_test: HostUnderTest, services: HostServices, other: HostServices
    ) -> None:
        """A user holding both permissions in their tenant holds neither in another."""
        outsider = host_under_test.create_user(other, [MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS])

        for permission in PERMISSIONS:
            assert other.has_permission(outsider, permission) is True
            assert services.has_permission(outsider, permission) is False

    def test_notify_admins_reaches_this_tenants_admins_only(
        self, host_under_test: HostUnderTest, services: HostServices, other: HostServices
    ) -> None:
        """Notifications of each level reach the services' tenant, in order, and no other tenant."""
        sent = [
            ("Sync done", "12 deals", "info"),
            ("Rate limited", "retrying", "warning"),
            ("Token revoked", "reconnect HubSpot", "error"),
        ]

        for subject, message, level in sent:
            services.notify_admins(subject, message, level)

        assert list(host_under_test.notifications(services)) == sent
        assert list(host_under_test.notifications(other)) == []

    # Events ---------------------------------------------------------------------------------

    def test_writes_through_the_services_fire_no_events(
        self, host_under_test: HostUnderTest, services: HostServices
    ) -> None:
        """No write of the services calls an ``ambac_*`` hook back."""
        company = services.create_company(CompanyDraft(name="Acme", external_id="co-1"))
        services.update_company(company.id, {"name": "Acme Machining"})
        contact = services.create_contact(ContactDraft(email="ann@acme.example"))
        services.update_contact(contact.id, {"first_name": "Ann"})
        order = services.create_order(OrderDraft(name="Bracket", company_id=company.id))
        services.update_order(order.id, {"order_status": OrderStatus.COMPLETED, "name": "B2"})
        services.update_order(order.id, {"archived": True})
        services.add_order_note(order.id, "note")
        services.notify_admins("Subject", "Message", "info")

        assert list(host_under_test.fired_events()) == []

    # Grouped writes (optional: GroupsWrites) -------------------------------------------------

    @staticmethod
    def _grouping(services: HostServices) -> GroupsWrites:
        if not isinstance(services, GroupsWrites):
            pytest.skip("these services commit each write on its own (they have no grouped_writes)")
        return services

    def test_grouped_writes_read_back_at_once_and_a_refused_one_is_undone_alone(
        self, services: HostServices
    ) -> None:
        """Inside ``grouped_writes`` each write reads back at once; one the host refuses (an
        order number in use) is undone alone, and the others are kept when the group ends."""
        grouping = self._grouping(services)
        with grouping.grouped_writes():
            company = services.create_company(CompanyDraft(name="Acme", external_id="g-co"))
            first = services.create_order(OrderDraft(name="One", order_number="G-1", external_id="g-1",
                                                     company_id=company.id))
            with pytest.raises(HostRecordError):
                services.create_order(OrderDraft(name="Dup", order_number="G-1", external_id="g-dup"))
            assert services.find_order_by_external_id("g-1") == first
            second = services.create_order(OrderDraft(name="Two", external_id="g-2"))
            services.update_order(first.id, {"name": "One, renamed"})

        assert services.find_order_by_external_id("g-dup") is None
        assert services.get_company(company.id) == company
        assert services.get_order(second.id) == second
        assert services.get_order(first.id).name == "One, renamed"  # type: ignore[union-attr]

    def test_a_group_that_raises_keeps_none_of_its_writes(self, services: HostServices) -> None:
        """A group left by an exception rolls back every write in it (creates and updates
        alike), and the services write normally afterwards."""
        grouping = self._grouping(services)
        kept = services.create_order(OrderDraft(name="Before", external_id="g-0"))

        def fail_mid_group() -> None:
            with grouping.grouped_writes():
                services.create_company(CompanyDraft(name="Globex", external_id="g-co"))
                services.create_contact(ContactDraft(email="gina@globex.example"))
                services.create_order(OrderDraft(name="One", external_id="g-1"))
                services.update_order(kept.id, {"name": "Renamed"})
                raise RuntimeError("the plugin failed mid-group")

        with pytest.raises(RuntimeError, match="mid-group"):
            fail_mid_group()

        assert services.find_order_by_external_id("g-1") is None
        assert list(services.find_companies_by_name("Globex")) == []
        assert list(services.find_contacts_by_email("gina@globex.example")) == []
        assert services.get_order(kept.id) == kept
        after = services.create_order(OrderDraft(name="After", external_id="g-3"))
        assert services.find_order_by_external_id("g-3") == after
