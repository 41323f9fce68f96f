"""The tests' world: a HubSpot sandbox, and a reference host with the plugin enabled for a tenant.

Test modules subclass :class:`PluginWorld` for what only they need (users, a served host, a
shared clock), build its settings with :func:`plugin_settings` and open it with
:func:`open_world`, the one place a world is set up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.host import COMPANY_FIELDS, ORDER_FIELDS, HostCapabilities
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox


def plugin_settings(hubspot: Sandbox, **extra: Any) -> dict[str, Any]:
    """Settings pointing the plugin at the sandbox; the background worker off (tests drain)."""
    return {"portal_id": str(hubspot.portal_id),
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "api_base_url": hubspot.base_url, "local_sandbox": True, "run_background_worker": False,
            **extra}


@attrs.define
class PluginWorld:
    """The sandbox portal, the host, the tenant and the settings it was enabled with."""

    hubspot: Sandbox
    host: ReferenceHost
    tenant: int
    settings: dict[str, Any]

    @property
    def runtime(self) -> Any:
        return self.host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime

    @property
    def services(self) -> Any:
        return self.host.services(self.tenant)

    @property
    def store(self) -> Any:
        return self.runtime.store_for(self.tenant)

    def configure(self, **changes: Any) -> None:
        """Change settings through the host, as an admin would."""
        self.settings = {**self.settings, **changes}
        self.host.change_settings(self.tenant, "hubspot", self.settings)

    def sync(self, **kwargs: Any) -> Any:
        return self.runtime.run_sync(self.tenant, **kwargs)

    def order_for(self, deal_id: str) -> Any:
        return self.services.find_order_by_external_id(f"hubspot:{self.hubspot.portal_id}:deal:{deal_id}")

    def company(self, **props: Any) -> str:
        return self.hubspot.add_object("companies", props)

    def contact(self, **props: Any) -> str:
        return self.hubspot.add_object("contacts", props)

    def deal(self, stage: str = "closedwon", companies: Iterable[Any] = (), contacts: Iterable[Any] = (),
             **props: Any) -> str:
        """Add a deal in HubSpot (as a UI user), in the default pipeline, with associations."""
        assoc = {name: list(ids) for name, ids in (("companies", companies), ("contacts", contacts)) if ids}
        return self.hubspot.add_object(
            "deals", {"dealname": "Deal", "pipeline": "default", "dealstage": stage, **props}, assoc)


W = TypeVar("W", bound=PluginWorld)

EVERY_FIELD = HostCapabilities(order_fields=ORDER_FIELDS, company_fields=COMPANY_FIELDS)
"""A host keeping every field the contract knows (order value, currency and date, company
website, phone and address): for tests of what the plugin does with those fields."""


def serving(host: ReferenceHost) -> contextlib.AbstractContextManager[str]:
    """Serve the host over loopback for the block; yield its base URL."""
    from ambac_hubspot_plugin._wsgi_server import served_on_loopback

    return served_on_loopback(host.wsgi_app())


@contextlib.contextmanager
def open_world(tmp_path: Path, world_type: type[W] = PluginWorld,
               *, settings: Callable[[Sandbox], dict[str, Any]] = plugin_settings,
               tenant_name: str = "Acme Machining", on_clock: Any = None,
               check_enabled: bool = True, close_runtime: bool = False,
               capabilities: HostCapabilities | None = None, plugins: Sequence[object] = (),
               **fields: Any) -> Iterator[W]:
    """A sandbox without rate limits and a reference host in ``tmp_path / "host"`` (both on
    ``on_clock`` when given), a tenant ``tenant_name`` with the plugin enabled with
    ``settings(sandbox)``, as a ``world_type`` given ``fields`` besides. ``capabilities`` are
    the host's (default: Ambac Tracker's, e.g. companies without website, phone or address).

    ``check_enabled`` asserts the plugin's enable report is ok; ``close_runtime`` closes the
    plugin's runtime when the world closes, before the host does (a worker or a store
    connection the test opened must not outlive it). ``capabilities`` are the host's
    (default: Ambac Tracker's, orders without value, currency or order date). ``plugins``:
    other packages' hook implementations (their strategies), registered before the enable.
    """
    clocked = {} if on_clock is None else {"clock": on_clock}
    with Sandbox(rate_limits=RateLimits.unlimited(), **clocked) as hubspot, \
            ReferenceHost(tmp_path / "host", capabilities=capabilities, plugins=plugins, **clocked) as host:
        tenant = host.create_tenant(tenant_name)
        chosen = settings(hubspot)
        reports = host.enable_plugin(tenant, "hubspot", chosen)
        if check_enabled:
            (report,) = [r for r in reports if r is not None]
            assert report.ok, report
        world = world_type(hubspot, host, tenant, chosen, **fields)
        try:
            yield world
        finally:
            if close_runtime:
                world.runtime.close()
