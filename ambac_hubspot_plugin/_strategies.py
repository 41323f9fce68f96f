"""The strategies a tenant's settings choose, built from what every installed package
registered (``hubspot_register_*_strategies``), typed by kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .conflicts import NamedStrategy
from .errors import ConfigError

if TYPE_CHECKING:
    from ._facade import PluginHooks
    from .host import HostCapabilities
    from .mapping import MappingStrategy
    from .settings import Settings

__all__ = ["ConflictChooser", "Strategies"]

#: ``choose(object_type, field)``: the conflict strategy of one field, with its name.
ConflictChooser = Callable[[str, str], NamedStrategy]

_S = TypeVar("_S")


class Strategies:
    """Builds a tenant's mapping and conflict strategies by the names its settings give."""

    def __init__(self, hooks: PluginHooks) -> None:
        self._hooks = hooks

    def check(self, settings: Settings, capabilities: HostCapabilities) -> None:
        """Refuse settings naming strategies no installed package provides (or bad options),
        or a mapping onto fields the host does not keep (a strategy with ``check_host``)."""
        mapping = self.mapping(settings)
        check_host = getattr(mapping, "check_host", None)
        if callable(check_host):
            check_host(capabilities)
        self.conflicts(settings)

    def mapping(self, settings: Settings) -> MappingStrategy:
        """The field-mapping strategy the settings choose, built with their options."""
        return _build(self._hooks.mapping_strategies(), "mapping", "mapping.strategy",
                      settings.mapping.strategy, settings.mapping.options)

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


def _build(registry: Mapping[str, Callable[[Mapping[str, Any]], _S]], kind: str, where: str,
           name: str, options: Mapping[str, Any]) -> _S:
    if name not in registry:
        raise ConfigError.from_problems(
            [(where, f"no {kind} strategy named {name!r}; installed: {sorted(registry)}")])
    return registry[name](options)
