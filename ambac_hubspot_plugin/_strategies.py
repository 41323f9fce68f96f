"""The strategies a tenant's settings choose, built from what every installed package
registered (``hubspot_register_*_strategies``), typed by kind."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .conflicts import NamedStrategy
from .errors import ConfigError, MappingError, StrategyError
from .mapping import COMPANY_FIELDS, CONTACT_FIELDS, ORDER_FIELDS

if TYPE_CHECKING:
    from ._facade import PluginHooks
    from .client import Company as HubSpotCompany
    from .client import Contact as HubSpotContact
    from .host import HostCapabilities, Order
    from .mapping import DealContext, MappingStrategy
    from .settings import Settings

__all__ = ["ConflictChooser", "GuardedMapping", "Strategies"]

log = logging.getLogger(__name__)

#: ``choose(object_type, field)``: the conflict strategy of one field, with its name.
ConflictChooser = Callable[[str, str], NamedStrategy]

_S = TypeVar("_S")


class Strategies:
    """Builds a tenant's mapping and conflict strategies by the names its settings give."""

    def __init__(self, hooks: PluginHooks) -> None:
        self._hooks = hooks

    def check(self, settings: Settings, capabilities: HostCapabilities, *, saving: bool = False) -> None:
        """Refuse settings naming strategies no installed package provides (or bad options),
        or a mapping onto fields the host does not keep (a strategy with ``check_host``).

        ``saving``: new settings, as an admin saves them. Only then is a ``conflicts.per_field``
        key naming no field refused: settings saved before such keys were checked must still
        start (the key is ignored, and Python's log says so)."""
        mapping = self.mapping(settings)
        check_host = getattr(mapping, "check_host", None)
        if callable(check_host):
            check_host(capabilities)
        problems = [(f"conflicts.per_field.{key}", f"no field {key!r}; keys are object.field with the "
                     f"object one of {sorted(_CONFLICT_FIELDS)} and a field it maps, e.g. order.name")
                    for key in settings.conflicts.per_field if not _conflict_field(key)]
        if problems and saving:
            raise ConfigError.from_problems(problems)
        for where, why in problems:
            log.warning("%s is ignored: %s", where, why)
        self.conflicts(settings)

    def mapping(self, settings: Settings) -> MappingStrategy:
        """The field-mapping strategy the settings choose, built with their options, as the
        engines use it (:class:`GuardedMapping`)."""
        return GuardedMapping(settings.mapping.strategy, _build(
            self._hooks.mapping_strategies(), "mapping", "mapping.strategy",
            settings.mapping.strategy, settings.mapping.options))

    def conflicts(self, settings: Settings) -> ConflictChooser:
        """The conflict strategy of each field: per field where the settings say, else the
        default. Named, so the audit trail records the name the settings chose."""
        registry = self._hooks.conflict_strategies()
        default = NamedStrategy(settings.conflicts.default, _build(
            registry, "conflict", "conflicts", settings.conflicts.default, {}))
        per_field = {key: NamedStrategy(name, _build(registry, "conflict", "conflicts", name, {}))
                     for key, name in settings.conflicts.per_field.items()}

        def choose(object_type: str, field: str) -> NamedStrategy:
            return per_field.get(f"{object_type}.{field}", default)

        return choose


_CONFLICT_FIELDS = {"order": ORDER_FIELDS, "company": COMPANY_FIELDS, "contact": CONTACT_FIELDS}
"""The fields a conflict can be about, by object: those a mapping sets."""


def _conflict_field(key: str) -> bool:
    """Whether ``key`` (``conflicts.per_field``) names a field a conflict can be about."""
    kind, _, field = key.partition(".")
    return field in _CONFLICT_FIELDS.get(kind, ())


class GuardedMapping:
    """A mapping strategy as the engines call it: whatever it does wrong on one record (raises,
    answers with something other than a mapping, or sets a field the engine does not own) is a
    :class:`~.errors.StrategyError` naming it, which fails that record only, on every path
    (create, update, preview, webhook). Everything else is the strategy's own."""

    def __init__(self, name: str, strategy: MappingStrategy) -> None:
        self.name = name
        self.strategy = strategy
        self.deal_properties = strategy.deal_properties
        self.company_properties = strategy.company_properties
        self.contact_properties = strategy.contact_properties

    def __getattr__(self, attribute: str) -> Any:
        """The strategy's optional parts (``check_host``, ``hubspot_property_for``, ...); the
        one the engines call per record, ``hubspot_property_for``, held to the same rules."""
        found = getattr(self.strategy, attribute)
        if attribute == "hubspot_property_for" and callable(found):
            return functools.partial(self._property_for, found)
        return found

    def _property_for(self, own: Callable[[str], object], field: str) -> str | None:
        answer = self._call(f"field {field}", lambda: own(field))
        if answer is not None and not isinstance(answer, str):
            raise StrategyError("mapping", self.name, f"field {field}",
                                f"answered {type(answer).__name__} for hubspot_property_for, not a property name")
        return answer

    def order_fields(self, context: DealContext) -> Mapping[str, object]:
        return self._fields("order", ORDER_FIELDS, f"deal {context.deal.id}",
                            lambda: self.strategy.order_fields(context))

    def company_fields(self, company: HubSpotCompany) -> Mapping[str, object]:
        return self._fields("company", COMPANY_FIELDS, f"company {company.id}",
                            lambda: self.strategy.company_fields(company))

    def contact_fields(self, contact: HubSpotContact) -> Mapping[str, object]:
        return self._fields("contact", CONTACT_FIELDS, f"contact {contact.id}",
                            lambda: self.strategy.contact_fields(contact))

    def deal_properties_for(self, order: Order) -> Mapping[str, str]:
        found = self._call(f"order {order.id}", lambda: self.strategy.deal_properties_for(order))
        if not isinstance(found, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
            raise StrategyError("mapping", self.name, f"order {order.id}",
                                "answered deal properties that are not a mapping of names to strings")
        return found

    def _fields(self, kind: str, allowed: frozenset[str], record: str,
                call: Callable[[], Mapping[str, object]]) -> Mapping[str, object]:
        found = self._call(record, call)
        if not isinstance(found, Mapping):
            raise StrategyError("mapping", self.name, record,
                                f"answered {type(found).__name__}, not a mapping of {kind} fields")
        unknown = sorted(str(k) for k in found if k not in allowed)
        if unknown:
            raise StrategyError("mapping", self.name, record, f"set {kind} fields the engine does not "
                                f"own: {unknown}; a mapping sets only {sorted(allowed)}")
        return found

    def _call(self, record: str, call: Callable[[], _S]) -> _S:
        try:
            return call()
        except MappingError:
            raise  # a value the strategy itself refuses: it says which
        except Exception as exc:
            raise StrategyError("mapping", self.name, record, f"raised {type(exc).__name__}: {exc}") from exc


def _build(registry: Mapping[str, Callable[[Mapping[str, Any]], _S]], kind: str, where: str,
           name: str, options: Mapping[str, Any]) -> _S:
    if name not in registry:
        raise ConfigError.from_problems(
            [(where, f"no {kind} strategy named {name!r}; installed: {sorted(registry)}")])
    return registry[name](options)
