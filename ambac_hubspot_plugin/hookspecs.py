"""The HubSpot plugin's own hooks (``hubspot_*``), for other packages to extend it.

They live in the host's plugin manager beside the ``ambac_*`` hooks (one flat namespace; the
prefixes keep them apart). The plugin adds these specs from its ``ambac_add_hookspecs``
implementation, so an extension package only needs an entry point in the ``ambac_tracker`` group:

.. code-block:: ini

    [options.entry_points]
    ambac_tracker =
        my_mapping = my_package.hubspot_mapping

Only :class:`~ambac_hubspot_plugin._facade.PluginHooks` calls these hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .host import hookspec

if TYPE_CHECKING:
    from .conflicts import ConflictStrategy
    from .events import OrderCreated, SyncStepFailed
    from .mapping import MappingStrategy

__all__ = [
    "ConflictStrategyFactory",
    "MappingStrategyFactory",
    "Register",
    "RegisterConflictStrategy",
    "RegisterMappingStrategy",
    "StrategyFactory",
    "hubspot_order_created",
    "hubspot_register_conflict_strategies",
    "hubspot_register_mapping_strategies",
    "hubspot_sync_step_failed",
]

StrategyFactory = Callable[[Mapping[str, Any]], Any]
"""Builds a strategy from its options (the strategy's part of the tenant settings)."""

MappingStrategyFactory = Callable[[Mapping[str, Any]], "MappingStrategy"]
"""Builds a :class:`~ambac_hubspot_plugin.mapping.MappingStrategy` from its options."""

ConflictStrategyFactory = Callable[[Mapping[str, Any]], "ConflictStrategy"]
"""Builds a :class:`~ambac_hubspot_plugin.conflicts.ConflictStrategy` from its options."""

Register = Callable[[str, StrategyFactory], None]
"""``register(name, factory)``: adds a named strategy; a name taken already is an error."""

RegisterMappingStrategy = Callable[[str, MappingStrategyFactory], None]
"""The ``register`` of :func:`hubspot_register_mapping_strategies`."""

RegisterConflictStrategy = Callable[[str, ConflictStrategyFactory], None]
"""The ``register`` of :func:`hubspot_register_conflict_strategies`."""


@hookspec
def hubspot_register_mapping_strategies(register: RegisterMappingStrategy) -> None:
    """Register field-mapping strategies by name.

    Called once per plugin manager, the first time the plugin needs its strategies. Call
    ``register(name, factory)`` for each strategy; the tenant's settings choose one by name.
    Every implementation is called; a name registered twice raises ``ConfigError``.

    :param register: the function to call for each strategy.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def hubspot_register_conflict_strategies(register: RegisterConflictStrategy) -> None:
    """Register conflict-resolution strategies by name.

    Called once per plugin manager, the first time the plugin needs its strategies. Call
    ``register(name, factory)`` for each strategy; settings choose them per object and field.
    Every implementation is called; a name registered twice raises ``ConfigError``.

    :param register: the function to call for each strategy.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def hubspot_order_created(event: OrderCreated) -> None:
    """React to an order the plugin created from a HubSpot deal.

    Called after the order and its link are stored, once per order. Every implementation is
    called; an exception in one is logged to the integration log and does not undo the order.

    :param event: the tenant, portal, deal, the new order and what triggered it.
    :return: nothing.

    .. versionadded:: 0.1.0
    """


@hookspec
def hubspot_sync_step_failed(event: SyncStepFailed) -> None:
    """React to a sync step that failed (to alert, count or report it elsewhere).

    Called after the failure is recorded in the integration log and the job queue. Every
    implementation is called; an exception in one is logged and otherwise ignored.

    :param event: the tenant, the step, the record, the error and whether it will be retried.
    :return: nothing.

    .. versionadded:: 0.1.0
    """
