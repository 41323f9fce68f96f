"""Closed-won event to order created: latency through the whole real-time path.

A deal is moved to closed won in the sandbox (as a HubSpot user would); the sandbox delivers the
signed webhook to the reference host served over loopback; the receiver stores it and wakes the
plugin's background worker, which reads the deal from the sandbox and creates the order. The
figure is the time from the move to the order row existing in the host, for deals moved one
after another. Target (issue #5): p50 under 1 s.

Run: ``.venv/bin/python benchmarks/bench_webhook_to_order.py [deals]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
    from ambac_hubspot_plugin.reference_host import ReferenceHost
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
    from ambac_hubspot_plugin.settings import ALLOW_LOCAL_SANDBOX_ENV

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp, Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, \
            ReferenceHost(Path(tmp) / "host") as host:
        server = make_wsgi_server(host.wsgi_app())
        base = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tenant = host.create_tenant("Bench")
        os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")  # the bundled sandbox on loopback
        host.enable_plugin(tenant, "hubspot", {
            "portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url, "local_sandbox": True,
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "webhook_client_secret": hubspot.client_secret, "public_base_url": base,
            "run_background_worker": True,
        })
        hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
        hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
        services = host.services(tenant)
        deals = [hubspot.add_object("deals", {"dealname": f"Deal {i}", "pipeline": "default",
                                              "dealstage": "contractsent"}) for i in range(count)]
        latencies = []
        for deal in deals:
            external = f"hubspot:{hubspot.portal_id}:deal:{deal}"
            started = time.perf_counter()
            hubspot.update_object("deals", deal, {"dealstage": "closedwon"})
            while services.find_order_by_external_id(external) is None:
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"deal {deal}: no order after 30 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
        server.shutdown()
        server.server_close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"{count} deals moved to closed won one after another; webhook -> order latency:")
    print(f"  p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms (target p50 under 1 s)")


if __name__ == "__main__":
    main()
