"""Outbound push: 10,000 host status changes over 2,000 linked orders, on SQLite.

Prints how long the ``ambac_order_status_changed`` hook takes to return (it stores the event as
a queue job; target p99 under 2 ms), how many changes per second the hooks record, and the
HubSpot calls the push then makes (target: at most ceil(2,000 / 100) = 20 batch updates, plus
as many notes batch creates when notes are on; ``bench_notes.py`` measures the notes).
Run: ``python benchmarks/bench_outbound.py``.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ambac_hubspot_plugin import plugin as plugin_module  # after the path fix
from ambac_hubspot_plugin.host import OrderStatus  # after the path fix
from ambac_hubspot_plugin.reference_host import ReferenceHost  # after the path fix
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox  # after the path fix
from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV  # after the path fix

ORDERS = 2_000
CHANGES = 10_000


def main(notes: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(rate_limits=RateLimits.unlimited()) as hs, \
            ReferenceHost(Path(tmp) / "host") as host:
        tenant = host.create_tenant("Bench")
        os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
        host.enable_plugin(tenant, "hubspot", {
            "portal_id": str(hs.portal_id),
            "credentials": {"kind": "private_app", "access_token": hs.access_token},
            "api_base_url": hs.base_url, "local_sandbox": True, "run_background_worker": False,
            "outbound": {"notes_on_status_change": notes}})
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        for i in range(ORDERS):
            hs.add_object("deals", {"dealname": f"D{i}", "pipeline": "default", "dealstage": "closedwon"})
        assert runtime.run_sync(tenant).created == ORDERS
        orders = host.services(tenant).list_orders()
        statuses = [OrderStatus.IN_PROGRESS, OrderStatus.ON_HOLD, OrderStatus.COMPLETED, OrderStatus.PENDING]
        rng = random.Random(1)
        current = {o.id: o for o in orders}
        # Changes are made in the host's database first, then the hook is timed alone, as a
        # host's post-commit signal would call it.
        timings: list[float] = []
        for n in range(CHANGES):
            order = orders[n % ORDERS] if n < ORDERS else rng.choice(orders)
            status = statuses[(n // ORDERS) % len(statuses)]
            before, after, _changed = host.services(tenant)._update_order(order.id, {"order_status": status})
            started = time.perf_counter()
            host.plugin_manager.hook.ambac_order_status_changed(
                host=host.services(tenant), order=after, previous_status=before.order_status)
            timings.append(time.perf_counter() - started)
            current[order.id] = after
        hs.clear_requests()
        started = time.perf_counter()
        while runtime.drain():
            pass
        push_seconds = time.perf_counter() - started
        calls = Counter((r.method, r.path) for r in hs.requests)
        batch_updates = calls[("POST", "/crm/objects/2026-09/deals/batch/update")]
        notes_made = calls[("POST", "/crm/objects/2026-09/notes/batch/create")]
        timings.sort()
        p50 = statistics.median(timings) * 1000
        p99 = timings[int(len(timings) * 0.99)] * 1000
        store = runtime.store_for(tenant)
        wrong = sum(1 for o in orders[:50]
                    if hs.get_object("deals", store.get_link_by_host(tenant, "order", o.id).hubspot_id)
                    ["ambac_order_status"] != current[o.id].order_status.value)
        print(f"notes {'on' if notes else 'off'}: {CHANGES} status changes over {ORDERS} orders")
        print(f"  hook return time: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {timings[-1] * 1000:.2f} ms "
              f"(target p99 < 2 ms); {CHANGES / sum(timings):,.0f} changes/s recorded")
        print(f"  HubSpot calls: {batch_updates} batch updates (target <= {math.ceil(ORDERS / 100)}), "
              f"{notes_made} notes batch creates, {sum(calls.values())} in all; push took {push_seconds:.1f} s")
        print(f"  sampled deals not showing the latest status: {wrong} of 50")


if __name__ == "__main__":
    main(notes=False)
    main(notes=True)
