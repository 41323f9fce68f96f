"""The host process of ``tests/test_custom_strategy.py``, which sees a separate distribution.

Run as ``python tests/_custom_child.py <data dir> <mapping strategy>`` with the distribution's
install directory on ``PYTHONPATH``. It starts a sandbox with one closed-won deal (carrying the
custom ``shop_note`` property), builds a ReferenceHost that loads plugins by entry point and
keeps every order field (the documented strategy maps the amount),
enables the HubSpot plugin with the given strategy, syncs, and prints one JSON line: the enable
report, the installed strategies and who registered them, the sync's counts and the order, or
the ``ConfigError`` raised on the way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import COMPANY_FIELDS, ORDER_FIELDS, HostCapabilities
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

DEAL = {
    "dealname": "Brackets for line 4",
    "pipeline": "default",
    "dealstage": "closedwon",
    "amount": "1250.50",
    "shop_note": "  Deburr all edges  ",
}


def main(data_dir: Path, strategy: str) -> dict[str, Any]:
    """Sync one closed-won deal with ``strategy``; return what happened."""
    out: dict[str, Any] = {}
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(
            data_dir, capabilities=HostCapabilities(order_fields=ORDER_FIELDS, company_fields=COMPANY_FIELDS)) as host:
        hubspot.add_property("deals", "shop_note")
        deal = hubspot.add_object("deals", DEAL)
        pm = host.plugin_manager
        out["plugins"] = {
            pm.get_name(p): [d.project_name, str(getattr(p, "__file__", ""))]
            for p, d in pm.list_plugin_distinfo()
        }
        tenant = host.create_tenant("Custom Strategy Machining")
        settings = {
            "portal_id": str(hubspot.portal_id),
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "api_base_url": hubspot.base_url, "local_sandbox": True,
            "run_background_worker": False,
            "mapping": {"strategy": strategy},
        }
        runtime = pm.get_plugin(plugin_module.RUNTIME_NAME).runtime
        try:
            try:
                reports = [
                    r for r in host.enable_plugin(tenant, "hubspot", settings) if r is not None
                ]
            except ConfigError as exc:
                out["enable_error"] = str(exc)
                return out
            out["enable_steps"] = [[s.name, s.ok, s.detail] for r in reports for s in r.steps]
            try:
                out["strategies"] = sorted(runtime.hooks.mapping_strategies())
                result = runtime.run_sync(tenant)
            except ConfigError as exc:
                out["sync_error"] = str(exc)
                return out
            out["created"] = result.created
            order = host.services(tenant).find_order_by_external_id(
                f"hubspot:{hubspot.portal_id}:deal:{deal}"
            )
            if order is not None:
                out["order"] = {
                    "name": order.name,
                    "customer_note": order.customer_note,
                    "value": str(order.value),
                }
        finally:
            runtime.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])), flush=True)
