"""The one caller of ``pm.hook`` for the plugin's own hooks, with types pluggy cannot check."""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from .errors import ConfigError
from .hookspecs import ConflictStrategyFactory, MappingStrategyFactory

if TYPE_CHECKING:
    from .events import OrderCreated, SyncStepFailed
    from .store import StateStore

__all__ = ["PluginHooks"]

log = logging.getLogger(__name__)

_Factory = TypeVar("_Factory", bound=Callable[[Mapping[str, Any]], Any])


class PluginHooks:
    """Typed access to the ``hubspot_*`` hooks of one plugin manager.

    Strategy registries are collected once, on first use, and cached: the set of installed
    packages does not change while the process runs.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._lock = threading.Lock()
        self._mapping: dict[str, MappingStrategyFactory] | None = None
        self._conflict: dict[str, ConflictStrategyFactory] | None = None

    def mapping_strategies(self) -> Mapping[str, MappingStrategyFactory]:
        """Return the field-mapping strategies every installed package registered, by name."""
        with self._lock:
            if self._mapping is None:
                self._mapping = self._collect(
                    "mapping", self._pm.hook.hubspot_register_mapping_strategies
                )
            return self._mapping

    def conflict_strategies(self) -> Mapping[str, ConflictStrategyFactory]:
        """Return the conflict strategies every installed package registered, by name."""
        with self._lock:
            if self._conflict is None:
                self._conflict = self._collect(
                    "conflict", self._pm.hook.hubspot_register_conflict_strategies
                )
            return self._conflict

    def order_created(self, event: OrderCreated) -> list[str]:
        """Tell listeners an order was created; return a line per listener that failed (for
        the integration log), which is logged, not raised."""
        return self._notify("hubspot_order_created", event)

    def sync_step_failed(self, event: SyncStepFailed) -> list[str]:
        """Tell listeners a sync step failed; return a line per listener that failed (for the
        integration log), which is logged, not raised."""
        return self._notify("hubspot_sync_step_failed", event)

    def tell(self, store: StateStore, tenant_id: str, events: Sequence[OrderCreated | SyncStepFailed]) -> None:
        """Tell the listeners of each event (:meth:`order_created`, :meth:`sync_step_failed`);
        each listener that failed is a ``WARNING`` line under ``hooks`` in the tenant's
        integration log, on the event's record (``deal:<id>`` for a new order)."""
        from .events import OrderCreated
        from .store import LogLevel

        rows: list[tuple[LogLevel, str, str, str | None]] = []
        for event in events:
            if isinstance(event, OrderCreated):
                record, lines = f"deal:{event.deal_id}", self.order_created(event)
            else:
                record, lines = event.record, self.sync_step_failed(event)
            rows.extend((LogLevel.WARNING, "hooks", line, record) for line in lines)
        if rows:
            store.log_many(tenant_id, rows)

    def _collect(self, kind: str, hook: pluggy.HookCaller) -> dict[str, _Factory]:
        # pluggy cannot check what a package registers; the names and callables are checked
        # here, the strategies they build where a tenant's settings choose them.
        found: dict[str, _Factory] = {}
        owners: dict[str, str] = {}
        current = {"plugin": "?"}

        def register(name: str, factory: _Factory) -> None:
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(
                    f"A {kind} strategy registered by {current['plugin']} has an empty or "
                    f"non-string name ({name!r}); register it under a non-empty name."
                )
            if not callable(factory):
                raise ConfigError(
                    f"The {kind} strategy {name!r} registered by {current['plugin']} is not "
                    "callable; register a factory taking the strategy's options."
                )
            if name in found:
                both = " and ".join(sorted((owners[name], current["plugin"])))
                raise ConfigError(
                    f"Two packages register a {kind} strategy named {name!r}: {both}. "
                    "Strategy names are settings keys and must be unique; uninstall one or "
                    "ask its author to rename it."
                )
            found[name] = factory
            owners[name] = current["plugin"]

        # Call each implementation on its own so a duplicate, or a failure, names its package.
        for impl in reversed(hook.get_hookimpls()):
            current["plugin"] = self._describe(impl)
            try:
                impl.function(**_arguments(impl, register=register))
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"The {kind} strategies of {current['plugin']} could not be registered: "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall that package."
                ) from exc
        return found

    def _notify(self, hook_name: str, event: OrderCreated | SyncStepFailed) -> list[str]:
        hook: pluggy.HookCaller = getattr(self._pm.hook, hook_name)
        failed = []
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(**_arguments(impl, event=event))
            except Exception as exc:
                name = self._describe(impl)
                log.exception("%s of plugin %s failed; ignored", hook_name, name)
                failed.append(f"{hook_name} of {name} failed (ignored): {type(exc).__name__}: {exc}")
        return failed

    def _describe(self, impl: pluggy.HookImpl) -> str:
        """The plugin of ``impl`` as people know it: the name it was registered under, else its
        module or class (pluggy names an unnamed plugin by its ``id()``)."""
        name = self._pm.get_name(impl.plugin)
        if name and name != str(id(impl.plugin)):
            return name
        plugin = impl.plugin
        if isinstance(plugin, types.ModuleType):
            return plugin.__name__
        return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _arguments(impl: pluggy.HookImpl, **given: object) -> dict[str, object]:
    """The hook's arguments ``impl`` takes: pluggy lets an implementation take fewer than the
    specification gives, and passes only those."""
    return {name: value for name, value in given.items() if name in impl.argnames}
