"""Field mapping: value parsers, the default strategy and the configurable one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ambac_hubspot_plugin.client import Company, Contact, Deal
from ambac_hubspot_plugin.errors import ConfigError, MappingError
from ambac_hubspot_plugin.host import Address, OrderStatus
from ambac_hubspot_plugin.mapping import (
    ConfigurableMapping,
    DealContext,
    DefaultMapping,
    closedate_to_date,
    normalize_domain,
    parse_amount,
    parse_currency,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
LA = ZoneInfo("America/Los_Angeles")


def _deal(**props: str | None) -> Deal:
    return Deal(id="101", properties={"dealname": "Brackets", **props}, updated_at=NOW)


def _context(deal: Deal, status: OrderStatus | None = None, tz: ZoneInfo = LA) -> DealContext:
    return DealContext(portal_id="1", deal=deal, company=None, contacts=(), stage_status=status, timezone=tz)


@pytest.mark.parametrize(("raw", "expected"), [("1000.50", Decimal("1000.50")), ("", None), (None, None),
                                               ("  42 ", Decimal(42)), ("-3", Decimal(-3))])
def test_parse_amount_accepts_plain_numbers_and_empty(raw, expected):
    """Amounts are Decimals; empty amounts are None."""
    assert parse_amount(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "1,000.50", "$5", "1e3", "NaN", "1.", ".5"])
def test_parse_amount_rejects_anything_else_naming_field_and_value(raw):
    """A malformed amount raises MappingError with the field, the value and what to do."""
    with pytest.raises(MappingError) as info:
        parse_amount(raw)
    assert info.value.field == "amount" and info.value.value == raw
    assert "correct the amount" in str(info.value)


def test_parse_currency_normalises_and_rejects():
    """Currency codes are upper-cased; non-ISO codes are refused."""
    assert parse_currency("usd") == "USD"
    assert parse_currency("") is None
    with pytest.raises(MappingError):
        parse_currency("dollars")


def test_closedate_midnight_utc_keeps_its_day_west_of_utc():
    """A date-only close date (midnight UTC) stays on its day for a portal in Los Angeles."""
    assert closedate_to_date("2026-11-02T00:00:00Z", LA) == date(2026, 11, 2)
    assert closedate_to_date("1793577600000", LA) == date(2026, 11, 2)


def test_closedate_instant_is_the_portal_calendar_day():
    """A close time late on the 2nd in Los Angeles is the 2nd, though it is the 3rd in UTC."""
    assert closedate_to_date("2026-11-03T06:30:00Z", LA) == date(2026, 11, 2)
    assert closedate_to_date("2026-11-03T06:30:00.000Z", ZoneInfo("UTC")) == date(2026, 11, 3)


def test_closedate_garbage_is_a_mapping_error():
    """An unreadable close date names the field."""
    with pytest.raises(MappingError, match="closedate"):
        closedate_to_date("next tuesday", LA)


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://www.Example.com/x", "example.com"), ("example.com", "example.com"),
    ("WWW.EXAMPLE.COM.", "example.com"), ("http://shop.example.co.uk:8080/a?b", "shop.example.co.uk"),
    ("", ""), (None, ""),
    # an internationalised domain has one form, whichever spelling: Unicode, ASCII, any case
    ("xn--bcher-kva.example", "bücher.example"), ("https://www.BÜCHER.example/", "bücher.example"),
    ("XN--BCHER-KVA.EXAMPLE", "bücher.example"), ("bu\u0308cher.example", "bücher.example"),
    ("xn--zz.example", "xn--zz.example"),  # not punycode: left as it is
])
def test_normalize_domain(raw, expected):
    """Websites and domains reduce to a bare lower-case host without www."""
    assert normalize_domain(raw) == expected


def test_default_order_fields():
    """The default strategy maps name, close date, amount, currency and the mapped stage."""
    deal = _deal(closedate="2026-11-02T00:00:00Z", amount="1250.00", deal_currency_code="eur")
    fields = DefaultMapping().order_fields(_context(deal, OrderStatus.IN_PROGRESS))
    assert fields == {"name": "Brackets", "order_date": date(2026, 11, 2), "value": Decimal("1250.00"),
                      "currency": "EUR", "order_status": OrderStatus.IN_PROGRESS}


def test_default_leaves_status_alone_for_unmapped_stages():
    """Without a stage-to-status entry the strategy does not own the order status."""
    assert "order_status" not in DefaultMapping().order_fields(_context(_deal()))


@pytest.mark.parametrize(("props", "field"), [({"dealname": "x" * 201}, "dealname"), ({"dealname": "  "}, "dealname"),
                                               ({"amount": "abc"}, "amount")])
def test_default_order_fields_refuse_what_the_host_cannot_take(props, field):
    """Too long or empty names and bad amounts raise MappingError naming the deal property."""
    with pytest.raises(MappingError) as info:
        DefaultMapping().order_fields(_context(_deal(**props)))
    assert info.value.field == field


def test_default_company_fields():
    """Companies map name, normalised domain as website, phone and address."""
    company = Company(id="7", updated_at=NOW, properties={
        "name": " Acme ", "domain": "https://www.ACME.example/", "phone": "+1 555", "address": "1 Main St",
        "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"})
    assert DefaultMapping().company_fields(company) == {
        "name": "Acme", "website": "acme.example", "phone": "+1 555",
        "address": Address("1 Main St", "Springfield", "IL", "62701", "US")}


def test_default_company_name_over_the_host_limit_is_an_error():
    """A 51-character company name is refused with the limit and the fix."""
    company = Company(id="7", updated_at=NOW, properties={"name": "N" * 51})
    with pytest.raises(MappingError, match="allows 50"):
        DefaultMapping().company_fields(company)


def test_default_contact_fields():
    """Contacts map email, first and last name; not the phone, which the host's users lack."""
    contact = Contact(id="3", updated_at=NOW, properties={"email": "Ann@Acme.example", "firstname": "Ann",
                                                         "lastname": "Lee", "phone": "+1 555"})
    assert DefaultMapping().contact_fields(contact) == {
        "email": "Ann@Acme.example", "first_name": "Ann", "last_name": "Lee"}
    assert "phone" not in DefaultMapping.contact_properties


def test_a_contact_phone_mapping_is_refused_naming_the_field():
    """The host's users keep no phone: mapping one onto a contact is refused when saved."""
    with pytest.raises(ConfigError) as info:
        ConfigurableMapping({"contact": {"phone": {"property": "phone"}}})
    assert set(info.value.problems) == {"mapping.options.contact.phone"}


def test_default_rejects_options():
    """The default strategy has no options; giving some is a ConfigError naming them."""
    with pytest.raises(ConfigError, match=r"mapping\.options\.x"):
        DefaultMapping({"x": 1})


def test_configurable_overrides_fields_with_transforms():
    """Rules map custom properties with strip, truncate, decimal, date, enum and constants."""
    mapping = ConfigurableMapping({
        "order": {
            "name": {"property": "dealname", "transforms": ["strip", {"truncate": 10}]},
            "order_number": {"property": "po_number", "transforms": ["strip"]},
            "estimated_completion": {"property": "due", "transforms": ["date"]},
            "order_status": {"property": "dealstage",
                             "transforms": [{"enum": {"won": "IN_PROGRESS"}, "default": "PENDING"}]},
            "customer_note": {"constant": "Imported from HubSpot"},
            "value": {"property": "net", "transforms": ["decimal"]},
        },
        "company": {"address.country": {"constant": "DE"}},
    })
    deal = _deal(dealname="  A very long deal name ", po_number=" PO-7 ", due="2026-12-01T00:00:00Z",
                 dealstage="won", net="99.5", amount="abc")
    fields = mapping.order_fields(_context(deal))
    assert fields["name"] == "A very lon"
    assert fields["order_number"] == "PO-7"
    assert fields["estimated_completion"] == date(2026, 12, 1)
    assert fields["order_status"] == OrderStatus.IN_PROGRESS
    assert fields["customer_note"] == "Imported from HubSpot"
    assert fields["value"] == Decimal("99.5")
    assert {"po_number", "due", "net"} <= set(mapping.deal_properties)
    company = mapping.company_fields(Company(id="1", updated_at=NOW, properties={"name": "Acme"}))
    assert company["address"].country == "DE"


def test_configurable_truncate_rescues_a_long_name():
    """A name too long for the default rule maps when the table truncates it."""
    mapping = ConfigurableMapping({"order": {"name": {"property": "dealname", "transforms": [{"truncate": 200}]}}})
    assert len(mapping.order_fields(_context(_deal(dealname="x" * 300)))["name"]) == 200


def test_configurable_removes_a_default_field():
    """A rule with property null stops the strategy from owning that field."""
    mapping = ConfigurableMapping({"order": {"value": {"property": None}}})
    assert "value" not in mapping.order_fields(_context(_deal(amount="5")))


def test_configurable_enum_without_default_refuses_unknown_values():
    """An enum map with no default raises MappingError for unmapped values."""
    mapping = ConfigurableMapping(
        {"order": {"customer_note": {"property": "phase", "transforms": [{"enum": {"a": "A"}}]}}}
    )
    with pytest.raises(MappingError, match="enum map"):
        mapping.order_fields(_context(_deal(phase="b")))


def test_configurable_options_are_validated_naming_each_path():
    """Bad tables, fields, rules and transforms are reported together with their paths."""
    with pytest.raises(ConfigError) as info:
        ConfigurableMapping({
            "orders": {},
            "order": {"colour": {"property": "x"}, "name": {"property": "dealname", "transforms": ["shout"]},
                      "value": {"property": "a", "constant": 1}},
        })
    assert set(info.value.problems) == {
        "mapping.options.orders", "mapping.options.order.colour",
        "mapping.options.order.name.transforms[0]", "mapping.options.order.value"}


@pytest.mark.parametrize(("options", "dealname"), [
    ({"order": {"name": {"property": "project_title"}}}, ""),
    ({"order": {"name": {"property": "dealname", "transforms": [{"truncate": 40}]}}}, "x" * 250),
])
def test_a_field_the_table_maps_itself_never_drops_the_other_default_fields(options, dealname):
    """The order name taken from elsewhere (or truncated): a deal whose own name the default rule
    refuses keeps its status, value, currency and date from the default rules."""
    deal = _deal(dealname=dealname, project_title="Manifold blocks", amount="1250.00",
                 deal_currency_code="usd", closedate="2026-03-01T12:00:00Z")
    fields = ConfigurableMapping(options).order_fields(_context(deal, OrderStatus.IN_PROGRESS))
    assert (fields["order_status"], fields["value"], fields["currency"], fields["order_date"]) == (
        OrderStatus.IN_PROGRESS, Decimal("1250.00"), "USD", date(2026, 3, 1))
    assert fields["name"] in ("Manifold blocks", "x" * 40)


def test_a_bad_default_value_the_table_overrides_does_not_fail_another_field():
    """An amount the default rule refuses, with the value mapped from another property: the
    name is the deal's, and the value is the other property's."""
    options = {"order": {"value": {"property": "net_amount", "transforms": ["decimal"]}}}
    fields = ConfigurableMapping(options).order_fields(_context(_deal(amount="1,250", net_amount="1250")))
    assert (fields["name"], fields["value"]) == ("Brackets", Decimal("1250"))
    with pytest.raises(MappingError):  # not overridden: the default rule still refuses it
        ConfigurableMapping({}).order_fields(_context(_deal(amount="1,250")))


def test_a_company_name_the_table_maps_itself_keeps_the_default_website():
    options = {"company": {"name": {"property": "legal_name"}}}
    company = Company(id="5", properties={"name": "", "website": "https://www.Acme.example/",
                                          "phone": "+49 30 1234", "legal_name": "Acme Tools GmbH"},
                      updated_at=NOW)
    fields = ConfigurableMapping(options).company_fields(company)
    assert (fields["name"], fields["website"], fields["phone"]) == ("Acme Tools GmbH", "acme.example", "+49 30 1234")
