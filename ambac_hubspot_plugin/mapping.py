"""Field mapping between HubSpot and Ambac Tracker: the strategy port, the built-ins, the parsers.

A mapping strategy turns a HubSpot deal (with its company and contacts) into the order fields it
owns, a HubSpot company into company fields, a contact into contact fields, and (for the
outbound push) an order into deal properties. The engine owns the rest: links, external ids,
which host company and customer an order points to. A strategy owns exactly the fields it
returns, so the engine never overwrites a host field no strategy maps.

Strategies are chosen by name (``mapping.strategy`` in the settings) from those registered
through ``hubspot_register_mapping_strategies``; ``default`` and ``configurable`` are built in
and registered through that same hook. Values a strategy cannot map raise
:class:`~ambac_hubspot_plugin.errors.MappingError` naming the field, the value and what to change.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import attrs

from .errors import ConfigError, MappingError
from .host import COMPANY_NAME_MAX, ORDER_NAME_MAX, ORDER_NUMBER_MAX, OrderStatus

if TYPE_CHECKING:
    from .client import Company as HubSpotCompany
    from .client import Contact as HubSpotContact
    from .client import Deal
    from .host import HostCapabilities, Order

__all__ = [
    "ConfigurableMapping",
    "DealContext",
    "DefaultMapping",
    "MappingStrategy",
    "closedate_to_date",
    "normalize_domain",
    "parse_amount",
    "parse_currency",
]

ORDER_FIELDS = frozenset(
    {"name", "order_number", "order_status", "estimated_completion", "order_date",
     "customer_note", "value", "currency"}
)
"""The order fields a mapping may set. Never the milestone: progress flows from the host to
HubSpot only. A host may lack some (see ``HostCapabilities.order_fields``); those values stay
in the plugin's own records."""
COMPANY_FIELDS = frozenset({"name", "description", "website", "phone", "address"})
ADDRESS_FIELDS = ("street", "city", "state", "zip", "country")
CONTACT_FIELDS = frozenset({"email", "first_name", "last_name"})
"""The host contact fields a mapping sets: the host's users keep no phone."""


@attrs.frozen
class DealContext:
    """Everything a strategy sees about one deal.

    ``stage_status`` is the order status the tenant's stage-to-status map gives the deal's
    stage (None when the map says nothing about it); ``timezone`` is the portal's time zone,
    for turning datetimes into the dates the host keeps. ``company`` and ``contacts`` are the
    records the engine read from HubSpot to link or create them: None and empty for an update,
    and without those linked already (they are not read again); map order fields from the
    deal alone.
    """

    portal_id: str
    deal: Deal
    company: HubSpotCompany | None
    contacts: tuple[HubSpotContact, ...]
    stage_status: OrderStatus | None
    timezone: ZoneInfo = attrs.field(factory=lambda: ZoneInfo("UTC"))


@runtime_checkable
class MappingStrategy(Protocol):
    """How HubSpot properties become host fields, and host orders become deal properties."""

    deal_properties: Sequence[str]
    """The deal properties the strategy reads (the engine asks HubSpot for them)."""
    company_properties: Sequence[str]
    contact_properties: Sequence[str]

    def order_fields(self, context: DealContext) -> Mapping[str, object]:
        """Return the :class:`~ambac_hubspot_plugin.host.Order` fields this deal sets."""

    def company_fields(self, company: HubSpotCompany) -> Mapping[str, object]:
        """Return the :class:`~ambac_hubspot_plugin.host.Company` fields this company sets."""

    def contact_fields(self, contact: HubSpotContact) -> Mapping[str, object]:
        """Return the :class:`~ambac_hubspot_plugin.host.Contact` fields this contact sets."""

    def deal_properties_for(self, order: Order) -> Mapping[str, str]:
        """Return extra deal properties (as strings) for this order's state in HubSpot.

        The outbound push always writes the plugin's own properties (order number, status,
        progress, completion, shipping, link); these are added on top and may override them.
        """


# ---- value parsers shared by strategies -------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def parse_amount(value: str | None, field: str = "amount") -> Decimal | None:
    """Parse a HubSpot amount: empty gives None; anything but a plain number is a MappingError."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not _PLAIN_NUMBER.fullmatch(text):
        raise MappingError(
            field, value,
            "is not a plain number (digits, an optional '-' and '.' decimals, no thousands "
            "separators or currency signs); correct the amount on the deal in HubSpot",
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid input
        raise MappingError(field, value, "is not a number") from exc


def parse_currency(value: str | None, field: str = "deal_currency_code") -> str | None:
    """Parse an ISO 4217 currency code (``usd`` -> ``USD``); empty gives None."""
    if value is None or not value.strip():
        return None
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise MappingError(field, value, "is not a three-letter ISO 4217 currency code such as USD")
    return code


def _parse_datetime(value: str, field: str) -> datetime:
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as exc:
        raise MappingError(
            field, value, "is not a date or time (ISO 8601 or epoch milliseconds expected)"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def closedate_to_date(value: str | None, timezone: ZoneInfo, field: str = "closedate") -> date | None:
    """Turn a HubSpot datetime into the calendar day a person in the portal meant.

    HubSpot keeps date-only values as midnight UTC: those are taken as that UTC day, since
    converting midnight UTC to a zone west of UTC would give the day before. Other instants
    are converted to the portal's time zone first.
    """
    if value is None or not value.strip():
        return None
    moment = _parse_datetime(value.strip(), field)
    if moment.time() == time(0, 0):
        return moment.date()
    return moment.astimezone(timezone).date()


def normalize_domain(value: str | None) -> str:
    """Return the bare lower-case host name of a website or domain, or ``""`` when it has none.

    ``https://www.Example.com/x`` and ``example.com:8080`` both become ``example.com``. A
    leading ``www.`` is dropped only when a registrable name remains (``www.com`` stays). An
    internationalised name has one form whichever way it was typed: ``xn--bcher-kva.example``
    (its ASCII spelling) and ``BÜCHER.example`` both become ``bücher.example``.
    """
    text = (value or "").strip()
    if not text:
        return ""
    if "://" not in text:
        text = "//" + text  # without a scheme urlsplit would read the host as a path
    try:
        hostname = urlsplit(text).hostname or ""
    except ValueError:  # e.g. an unbalanced IPv6 bracket: no usable domain
        return ""
    hostname = hostname.rstrip(".")
    if not hostname.isascii() or "xn--" in hostname:
        hostname = ".".join(_unicode_label(label) for label in hostname.split("."))
    if hostname.startswith("www.") and "." in hostname[4:]:
        hostname = hostname[4:]
    return hostname


def _unicode_label(label: str) -> str:
    """One label of a host name in its Unicode form (NFC, lower case); an ``xn--`` label that
    is not valid punycode stays as it is."""
    if label[:4].lower() == "xn--" and label.isascii():
        with contextlib.suppress(UnicodeError):
            label = label.encode("ascii").decode("idna")
    return unicodedata.normalize("NFC", label).lower()


def _text(value: str | None) -> str:
    return (value or "").strip()


def _limited(field: str, value: str, limit: int, hint: str) -> str:
    if len(value) > limit:
        raise MappingError(field, value, f"is {len(value)} characters; the host allows {limit}: {hint}")
    return value


# ---- the default strategy ---------------------------------------------------------------------


class DefaultMapping:
    """The documented mapping: deal name, company, close date, amount, currency, stage.

    deal ``dealname`` -> order ``name`` (required, at most 200 characters); ``closedate`` ->
    ``order_date`` (the portal's calendar day); ``amount`` -> ``value`` (Decimal, empty allowed);
    ``deal_currency_code`` -> ``currency``; ``dealstage`` -> ``order_status`` through the
    stage-to-status map (unmapped stages leave the status alone). The order number is left to
    the host's numbering. Company ``name`` (at most 50), ``domain`` (or ``website``) ->
    ``website``, ``phone``, address; contact ``email``, ``firstname``, ``lastname`` (the host's
    users keep no phone, so a contact's phone is not mapped).
    """

    deal_properties: Sequence[str] = (
        "dealname", "amount", "deal_currency_code", "closedate", "dealstage", "pipeline",
        "hs_lastmodifieddate", "hs_object_id", "hs_merged_object_ids",
    )
    company_properties: Sequence[str] = (
        "name", "domain", "website", "phone", "address", "city", "state", "zip", "country",
        "hs_lastmodifieddate",
    )
    contact_properties: Sequence[str] = ("email", "firstname", "lastname", "lastmodifieddate")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if options:
            raise ConfigError.from_problems(
                [(f"mapping.options.{key}", "the default strategy takes no options; use "
                  "mapping.strategy = 'configurable' to change fields") for key in options]
            )

    def order_fields(self, context: DealContext) -> Mapping[str, object]:
        """Map the deal's name, close date, amount, currency and (mapped) stage."""
        return self._order_fields(context, frozenset())

    def _order_fields(self, context: DealContext, skip: frozenset[str]) -> dict[str, object]:
        """The default order fields but those in ``skip`` (their rules are not even run: a
        strategy that maps them otherwise must not fail on the default's rule)."""
        props = context.deal.properties
        fields: dict[str, object] = {}
        if "name" not in skip:
            name = _text(props.get("dealname"))
            if not name:
                raise MappingError("dealname", props.get("dealname"), "is empty; give the deal a name in HubSpot")
            fields["name"] = _limited("dealname", name, ORDER_NAME_MAX, "shorten the deal name in HubSpot")
        if "order_date" not in skip:
            fields["order_date"] = closedate_to_date(props.get("closedate"), context.timezone)
        if "value" not in skip:
            fields["value"] = parse_amount(props.get("amount"))
        if "currency" not in skip:
            fields["currency"] = parse_currency(props.get("deal_currency_code"))
        if context.stage_status is not None and "order_status" not in skip:
            fields["order_status"] = context.stage_status
        return fields

    def company_fields(self, company: HubSpotCompany) -> Mapping[str, object]:
        """Map the company's name, domain, phone and address."""
        return self._company_fields(company, frozenset())

    def _company_fields(self, company: HubSpotCompany, skip: frozenset[str]) -> dict[str, object]:
        """The default company fields but those in ``skip`` (see :meth:`_order_fields`)."""
        from .host import Address

        props = company.properties
        fields: dict[str, object] = {}
        if "name" not in skip:
            name = _text(props.get("name")) or normalize_domain(props.get("domain"))
            if not name:
                raise MappingError("name", props.get("name"),
                                   "is empty and the company has no domain; name the company in HubSpot")
            fields["name"] = _limited("name", name, COMPANY_NAME_MAX, "shorten the company name in HubSpot or "
                                      "use the configurable strategy with a truncate transform")
        domain = normalize_domain(props.get("domain")) or normalize_domain(props.get("website"))
        return fields | {
            "website": domain,
            "phone": _text(props.get("phone")),
            "address": Address(
                street=_text(props.get("address")), city=_text(props.get("city")),
                state=_text(props.get("state")), zip=_text(props.get("zip")),
                country=_text(props.get("country")),
            ),
        }

    def contact_fields(self, contact: HubSpotContact) -> Mapping[str, object]:
        """Map the contact's email and names."""
        props = contact.properties
        return {
            "email": _text(props.get("email")),
            "first_name": _text(props.get("firstname")),
            "last_name": _text(props.get("lastname")),
        }

    def deal_properties_for(self, order: Order) -> Mapping[str, str]:
        """Nothing beyond the plugin's own deal properties, which the outbound push writes."""
        return {}


# ---- the configurable strategy ------------------------------------------------------------------

Transform = Callable[[object, str, ZoneInfo], object]


def _t_strip(value: object, field: str, tz: ZoneInfo) -> object:
    return value.strip() if isinstance(value, str) else value


def _t_decimal(value: object, field: str, tz: ZoneInfo) -> object:
    return parse_amount(value if isinstance(value, str) or value is None else str(value), field)


def _t_date(value: object, field: str, tz: ZoneInfo) -> object:
    text = value if isinstance(value, str) or value is None else str(value)
    return closedate_to_date(text, tz, field)


def _t_datetime(value: object, field: str, tz: ZoneInfo) -> object:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _parse_datetime(str(value).strip(), field)


def _t_truncate(limit: int) -> Transform:
    def apply(value: object, field: str, tz: ZoneInfo) -> object:
        return value[:limit] if isinstance(value, str) else value
    return apply


def _t_enum(table: Mapping[str, Any], default: object) -> Transform:
    def apply(value: object, field: str, tz: ZoneInfo) -> object:
        key = "" if value is None else str(value)
        if key in table:
            return table[key]
        if default is not _NO_DEFAULT:
            return default
        raise MappingError(field, value,
                           f"has no entry in the enum map (known: {sorted(table)}); add it to the mapping options")
    return apply


_NO_DEFAULT = object()
_UTC = ZoneInfo("UTC")


@attrs.frozen
class _Rule:
    target: str
    source: str | None
    constant: object
    transforms: tuple[Transform, ...]

    def apply(self, props: Mapping[str, str | None], tz: ZoneInfo) -> object:
        value: object = self.constant if self.source is None else props.get(self.source)
        for transform in self.transforms:
            value = transform(value, self.source or self.target, tz)
        return value


class ConfigurableMapping(DefaultMapping):
    """The default mapping, with fields overridden by a property -> field table from settings.

    ``mapping.options`` has up to three tables, ``order``, ``company`` and ``contact``; each maps
    a host field to a rule: ``{"property": "<hubspot property>", "transforms": [...]}`` or
    ``{"constant": <value>}``. Transforms, applied in order: ``"strip"``, ``{"truncate": n}``,
    ``"decimal"``, ``"date"``, ``"datetime"``, ``{"enum": {"<hubspot value>": <host value>},
    "default": <value>}``. A rule with ``"property": null`` removes a default field.
    Any HubSpot property, custom ones included, can be a source.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        problems: list[tuple[str, str]] = []
        tables = {"order": ORDER_FIELDS, "company": COMPANY_FIELDS | {f"address.{f}" for f in ADDRESS_FIELDS},
                  "contact": CONTACT_FIELDS}
        self._rules: dict[str, tuple[_Rule, ...]] = {}
        self._removed: dict[str, set[str]] = {}
        for key in options:
            if key not in tables:
                problems.append((f"mapping.options.{key}", f"unknown table; use {sorted(tables)}"))
        extra_props: dict[str, list[str]] = {"order": [], "company": [], "contact": []}
        for table, allowed in tables.items():
            rules, removed = [], set()
            raw_table = options.get(table, {})
            if not isinstance(raw_table, Mapping):
                problems.append((f"mapping.options.{table}", "must be an object of field -> rule"))
                continue
            for target, raw in raw_table.items():
                path = f"mapping.options.{table}.{target}"
                if target not in allowed:
                    problems.append((path, f"not a host field; use one of {sorted(allowed)}"))
                    continue
                rule = self._rule(target, raw, path, problems)
                if rule is None:
                    removed.add(target)
                elif rule is not False:
                    rules.append(rule)
                    if rule.source:
                        extra_props[table].append(rule.source)
            self._rules[table] = tuple(rules)
            self._removed[table] = removed
        if problems:
            raise ConfigError.from_problems(problems, what="mapping options")
        self.deal_properties = tuple(dict.fromkeys([*DefaultMapping.deal_properties, *extra_props["order"]]))
        self.company_properties = tuple(dict.fromkeys([*DefaultMapping.company_properties, *extra_props["company"]]))
        self.contact_properties = tuple(dict.fromkeys([*DefaultMapping.contact_properties, *extra_props["contact"]]))

    @staticmethod
    def _rule(target: str, raw: object, path: str, problems: list[tuple[str, str]]) -> Any:
        if not isinstance(raw, Mapping):
            problems.append((path, 'must be {"property": ..., "transforms": [...]} or {"constant": ...}'))
            return False
        unknown = set(raw) - {"property", "constant", "transforms"}
        if unknown:
            problems.append((path, f"unknown keys {sorted(unknown)}"))
            return False
        if "property" in raw and raw["property"] is None:
            return None
        if ("property" in raw) == ("constant" in raw):
            problems.append((path, "give exactly one of 'property' or 'constant'"))
            return False
        source = raw.get("property")
        if source is not None and (not isinstance(source, str) or not source.strip()):
            problems.append((f"{path}.property", "must be a HubSpot property name"))
            return False
        transforms: list[Transform] = []
        for i, spec in enumerate(raw.get("transforms", [])):
            t = ConfigurableMapping._transform(spec)
            if t is None:
                problems.append((f"{path}.transforms[{i}]", "unknown transform; use strip, "
                                 "{truncate: n}, decimal, date, datetime or {enum: {...}}"))
            else:
                transforms.append(t)
        return _Rule(target, source, raw.get("constant"), tuple(transforms))

    @staticmethod
    def _transform(spec: object) -> Transform | None:
        simple = {"strip": _t_strip, "decimal": _t_decimal, "date": _t_date, "datetime": _t_datetime}
        if isinstance(spec, str):
            return simple.get(spec)
        if isinstance(spec, Mapping):
            if set(spec) == {"truncate"} and isinstance(spec["truncate"], int) and spec["truncate"] > 0:
                return _t_truncate(spec["truncate"])
            if "enum" in spec and set(spec) <= {"enum", "default"} and isinstance(spec["enum"], Mapping):
                return _t_enum(dict(spec["enum"]), spec.get("default", _NO_DEFAULT))
        return None

    def check_host(self, capabilities: HostCapabilities) -> None:
        """Refuse rules onto order or company fields the host does not keep; ``ConfigError``
        names each rule's path. Called when settings are saved (enable, settings changed).

        The default rules are not refused: a default field the host lacks (an order's value, a
        company's website) simply stays in the plugin's own records.
        """
        problems: list[tuple[str, str]] = []
        for table, kept in (("order", capabilities.order_fields), ("company", capabilities.company_fields)):
            mappable = ORDER_FIELDS if table == "order" else COMPANY_FIELDS
            choices = sorted(f for f in mappable if f in kept)
            if table == "company" and "address" in kept:
                choices = sorted({*choices, *(f"address.{f}" for f in ADDRESS_FIELDS)} - {"address"})
            for rule in self._rules[table]:
                field = rule.target.split(".", 1)[0]
                if field not in kept:
                    problems.append((f"mapping.options.{table}.{rule.target}",
                                     f"this host's {'orders' if table == 'order' else 'companies'} have no "
                                     f"field {field!r}; remove it or map to one of {choices}"))
        if problems:
            raise ConfigError.from_problems(problems, what="mapping options")

    def _apply(self, table: str, base: Mapping[str, object], props: Mapping[str, str | None],
               tz: ZoneInfo = _UTC) -> dict[str, object]:
        fields = {k: v for k, v in base.items() if k not in self._removed[table]}
        for rule in self._rules[table]:
            value = rule.apply(props, tz)
            if rule.target.startswith("address."):
                from .host import Address

                current = fields.get("address") or Address()
                fields["address"] = attrs.evolve(current, **{rule.target[8:]: "" if value is None else str(value)})  # type: ignore[misc]  # attrs.evolve on a frozen Address
            else:
                fields[rule.target] = value
        return fields

    def order_fields(self, context: DealContext) -> Mapping[str, object]:
        """The default order fields, overridden by the ``order`` table."""
        base = self._order_fields(context, self._own("order"))
        fields = self._apply("order", base, context.deal.properties, context.timezone)
        self._check_order(fields)
        return fields

    def company_fields(self, company: HubSpotCompany) -> Mapping[str, object]:
        """The default company fields, overridden by the ``company`` table."""
        return self._apply("company", self._company_fields(company, self._own("company")), company.properties)

    def contact_fields(self, contact: HubSpotContact) -> Mapping[str, object]:
        """The default contact fields, overridden by the ``contact`` table."""
        return self._apply("contact", super().contact_fields(contact), contact.properties)

    def _own(self, table: str) -> frozenset[str]:
        """The fields the table maps itself or removes: their default rules are not run (a
        too-long name that the table truncates is the point of overriding it)."""
        return frozenset({r.target for r in self._rules[table]} | self._removed[table])

    @staticmethod
    def _check_order(fields: Mapping[str, object]) -> None:
        name = fields.get("name")
        if not isinstance(name, str) or not name:
            raise MappingError("name", name, "the order name is empty after mapping; map a non-empty property to it")
        _limited("name", name, ORDER_NAME_MAX, "add a truncate transform or shorten the value in HubSpot")
        number = fields.get("order_number")
        if isinstance(number, str):
            _limited("order_number", number, ORDER_NUMBER_MAX, "map a shorter property or add {truncate: 20}")
        status = fields.get("order_status")
        if status is not None and not isinstance(status, OrderStatus):
            try:
                # A value, or (deprecated) a label as mapping settings named statuses before.
                fields["order_status"] = OrderStatus.parse(str(status))  # type: ignore[index]  # fields is the dict built above
            except ValueError as exc:
                raise MappingError("order_status", status,
                                   f"is not a host status; use one of {OrderStatus.allowed()}") from exc
