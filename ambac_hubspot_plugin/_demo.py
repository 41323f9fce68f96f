"""The demo behind ``ambac-hubspot demo``: the whole integration against a seeded sandbox."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

__all__ = ["print_demo", "run_demo"]


def run_demo(*, seed_deals: int, data_dir: Path | None, say: Callable[[str], object] | None,
             screenshots: Path | None = None) -> dict[str, Any]:
    """Run the demo story and return what happened as JSON-compatible data; with
    ``screenshots``, then stage what the admin pages show and save a PNG of each page there."""
    from ._runtime import EnableReport, Runtime
    from .plugin import RUNTIME_NAME
    from .reference_host import ReferenceHost
    from .sandbox import Sandbox
    from .settings import ALLOW_LOCAL_SANDBOX_ENV

    # The demo is the operator's own try-out against the sandbox it starts: it allows loopback
    # for its process (the only tenant is its own).
    os.environ.setdefault(ALLOW_LOCAL_SANDBOX_ENV, "1")
    started = time.perf_counter()
    step = say or (lambda _text: None)
    with tempfile.TemporaryDirectory(prefix="ambac-hubspot-demo-") as tmp:
        root = data_dir or Path(tmp)
        with Sandbox() as hubspot, ReferenceHost(root / "host") as host, _served(host) as base, \
                ExitStack() as cleanup:
            hubspot.seed(companies=max(3, seed_deals // 5), contacts=max(3, seed_deals // 2),
                         deals=seed_deals, seed=7)
            step(f"[bold]1.[/] HubSpot sandbox at {hubspot.base_url} (portal {hubspot.portal_id}), "
                 f"seeded with {seed_deals} deals")
            plugins = [name for name, _ in host.plugin_manager.list_name_plugin() if name]
            step(f"[bold]2.[/] Reference host discovered plugins: {', '.join(plugins)}")
            tenant = host.create_tenant("Demo Manufacturing")
            settings = {
                "portal_id": str(hubspot.portal_id),
                "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
                "api_base_url": hubspot.base_url, "local_sandbox": True,
                "portal_timezone": "America/Chicago",
                "webhook_client_secret": hubspot.client_secret,
                "public_base_url": base,
                "run_background_worker": False,  # started at step 7, so steps 4 and 6 are the only syncs
            }
            if screenshots is not None:
                from ._demo_pages import conflict_settings

                settings["conflicts"] = conflict_settings()
            (report,) = [r for r in host.enable_plugin(tenant, "hubspot", settings) if r is not None]
            assert isinstance(report, EnableReport)  # ours is the only plugin that reports
            step(f"[bold]3.[/] Enabled for tenant {tenant} 'Demo Manufacturing': "
                 + ", ".join(f"{s.name} {'ok' if s.ok else 'FAILED: ' + s.detail}" for s in report.steps))
            plugin = host.plugin_manager.get_plugin(RUNTIME_NAME)
            assert plugin is not None  # registered by the plugin's ambac_add_hookspecs
            runtime: Runtime = plugin.runtime
            cleanup.callback(runtime.close)  # stop the worker before the host and sandbox go
            first = runtime.run_sync(tenant)
            step(f"[bold]4.[/] First sync: {first.created} orders created, {first.skipped} deals "
                 f"skipped (not closed won), {first.failed} failed")
            moved = _move_one_deal_to_won(hubspot)
            step(f"[bold]5.[/] In HubSpot, deal {moved['id']} ({moved['name']!r}) moved from "
                 f"{moved['from']!r} to 'closedwon'")
            second = runtime.run_sync(tenant)
            step(f"[bold]6.[/] Second sync: {second.created} created, {second.updated} updated, "
                 f"{second.unchanged + second.skipped} unchanged or skipped")
            runtime.start_worker()  # as a host process runs it; woken by each webhook batch
            hubspot.webhooks.set_target(f"{base}/integrations/hubspot/webhooks/{tenant}")
            hubspot.webhooks.subscribe("deal.propertyChange", "dealstage")
            realtime = _move_one_deal_to_won(hubspot)
            order_by_webhook, waited = _wait_for_order(host.services(tenant),
                                                       f"hubspot:{hubspot.portal_id}:deal:{realtime['id']}")
            step(f"[bold]7.[/] Deal {realtime['id']} ({realtime['name']!r}) moved to 'closedwon': HubSpot's "
                 f"signed webhook reached the host and order {order_by_webhook} was created "
                 f"{waited * 1000:.0f} ms later, without a sync run")
            services = host.services(tenant)
            store = runtime.store_for(tenant)
            portal = str(hubspot.portal_id)
            new_order = services.find_order_by_external_id(f"hubspot:{portal}:deal:{moved['id']}")
            progress = _milestone_progress(host, hubspot, tenant, new_order, moved["id"])
            step(f"[bold]8.[/] In Ambac Tracker, order {new_order.order_number if new_order else '?'} reached "
                 f"milestone {progress['milestone']!r}: its deal shows {progress['ambac_milestone']!r}, "
                 f"{progress['ambac_progress_percent']} % done")
            result = {
                # Only a kept --data-dir outlives the demo; a temporary one is gone on return.
                "host_dir": str((root / "host").resolve()) if data_dir else None,
                "tenant_id": tenant,
                "sandbox": {"base_url": hubspot.base_url, "portal_id": hubspot.portal_id},
                "plugins": plugins,
                "enable_report": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in report.steps],
                "moved_deal": moved,
                "order_from_moved_deal": new_order.order_number if new_order else None,
                "milestone_progress": progress,
                "webhook_deal": realtime,
                "order_from_webhook": order_by_webhook,
                "webhook_to_order_ms": round(waited * 1000),
                "orders": [_order_row(o, services, store) for o in services.list_orders()],
                "companies": _companies(store, services, tenant),
                "contacts": _contacts(store, services, tenant, portal),
                "sync_history": [
                    {"id": r.id, "kind": r.kind, "status": str(r.status), "created": r.created,
                     "updated": r.updated, "skipped": r.skipped, "failed": r.failed,
                     "seconds": round((r.ended_at - r.started_at).total_seconds(), 3) if r.ended_at else None}
                    for r in reversed(store.recent_runs(tenant, limit=10))
                ],
                "hubspot_calls": runtime.status(tenant).get("hubspot_calls"),
                "seconds": round(time.perf_counter() - started, 2),
            }
            if screenshots is not None:
                result["screenshots"] = [str(p) for p in _screenshots(host, hubspot, runtime, tenant,
                                                                      base, screenshots, step)]
    return result


def _screenshots(host: Any, hubspot: Any, runtime: Any, tenant: str, base: str, directory: Path,
                 step: Callable[[str], object]) -> list[Path]:
    from ._demo_pages import stage_pages, take_screenshots
    from ._pages import BASE_PATH
    from .host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
    from .reference_host import DEFAULT_MOUNT_PREFIX

    staged = stage_pages(host, hubspot, runtime, tenant)
    step(f"[bold]9.[/] For the admin pages: a sync with {staged['failed_deals']} failed deal, "
         f"{staged['open_conflicts']} conflict held for a person, {staged['dead_letters']} dead letter")
    user = host.create_user(tenant, "demo-admin@example.com")
    for permission in (VIEW_INTEGRATIONS, MANAGE_INTEGRATIONS):
        host.grant(user, permission)
    taken = take_screenshots(f"{base}{DEFAULT_MOUNT_PREFIX}/{BASE_PATH}", host.create_api_token(user), directory)
    step(f"[bold]10.[/] {len(taken)} screenshots of the admin pages in {directory}")
    return taken


def _served(host: Any) -> AbstractContextManager[str]:
    """Serve the reference host on loopback (the webhook receiver is one of its routes)."""
    from ._wsgi_server import served_on_loopback

    return served_on_loopback(host.wsgi_app(), name="demo-host")


def _wait_for_order(services: Any, external_id: str, timeout: float = 15.0) -> tuple[str | None, float]:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        order = services.find_order_by_external_id(external_id)
        if order is not None:
            return order.order_number, time.perf_counter() - started
        time.sleep(0.005)
    return None, timeout


def _move_one_deal_to_won(hubspot: Any) -> dict[str, str]:
    """Pick the first open deal of the default pipeline and close it as won, as a UI user."""
    portal = hubspot.portal
    with portal.lock:
        candidates = sorted(
            (int(obj.id), obj.props.get("dealname") or "", obj.props.get("dealstage") or "")
            for obj in portal.objects["deals"].values()
            if obj.props.get("pipeline") == "default"
            and obj.props.get("dealstage") not in ("closedwon", "closedlost")
        )
    if candidates:
        deal_id, name, stage = candidates[0]
    else:  # a small seed (--deals 0) may have no open deal left: add one to tell the story
        name, stage = "Demo deal", "contractsent"
        deal_id = int(hubspot.add_object("deals", {"dealname": name, "pipeline": "default",
                                                   "dealstage": stage}))
    hubspot.update_object("deals", str(deal_id), {"dealstage": "closedwon"})
    return {"id": str(deal_id), "name": name, "from": stage}


def _milestone_progress(host: Any, hubspot: Any, tenant: str, order: Any, deal_id: str,
                        timeout: float = 15.0) -> dict[str, Any]:
    """Move an order to step 3 of 4 of a milestone template, as a host user would; wait for
    the worker to push its progress to the deal, and return what the deal shows."""
    steps = host.create_milestone_template(tenant, "Machined parts", ["Kickoff", "Machining", "Inspection", "Shipping"])
    found: dict[str, Any] = {"milestone": steps[2].name, "ambac_milestone": None, "ambac_progress_percent": None}
    if order is None:
        return found
    host.set_order_milestone(tenant, order.id, steps[2].id)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and found["ambac_milestone"] != steps[2].name:
        time.sleep(0.05)
        props = hubspot.get_object("deals", deal_id)
        found.update({k: props.get(k) for k in ("ambac_milestone", "ambac_progress_percent")})
    return found


def _order_row(order: Any, services: Any, store: Any) -> dict[str, Any]:
    company = services.get_company(order.company_id) if order.company_id else None
    customer = services.get_contact(order.customer_id) if order.customer_id else None
    # Ambac Tracker's orders have no value: the plugin keeps the deal's amount with its link.
    link = store.get_link_by_host(order.tenant_id, "order", order.id)
    kept = link.synced if link is not None else {}
    amount = order.value if order.value is not None else kept.get("value")
    currency = order.currency or kept.get("currency") or ""
    milestone = order.current_milestone
    return {
        "number": order.order_number, "name": order.name, "status": order.order_status.label,
        "value": f"{amount} {currency}".strip() if amount is not None else "",
        "order_date": order.order_date.isoformat() if order.order_date else kept.get("order_date") or "",
        "milestone": f"{milestone.name} ({milestone.position}/{milestone.count})" if milestone else "",
        "company": company.name if company else "", "customer": customer.email if customer else "",
        "external_id": order.external_id,
    }


def _companies(store: Any, services: Any, tenant: str) -> list[dict[str, Any]]:
    """The host's companies with the domain and phone the plugin keeps for them (the real
    host's companies have neither)."""
    rows = []
    for company in services.list_companies():
        link = store.get_link_by_host(tenant, "company", company.id)
        kept = link.synced if link is not None else {}
        rows.append({"id": company.id, "name": company.name,
                     "website": company.website or kept.get("website", ""),
                     "phone": company.phone or kept.get("phone", "")})
    return rows


def _contacts(store: Any, services: Any, tenant: str, portal: str) -> list[dict[str, Any]]:
    rows = []
    seen: set[str] = set()
    for order in services.list_orders():
        if order.customer_id and order.customer_id not in seen:
            seen.add(order.customer_id)
            contact = services.get_contact(order.customer_id)
            if contact is not None:
                rows.append({"id": contact.id, "email": contact.email,
                             "name": f"{contact.first_name} {contact.last_name}".strip()})
    return rows


def print_demo(console: Any, result: dict[str, Any]) -> None:
    """Print the demo's result as tables."""
    from rich.table import Table

    def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
        t = Table(title=title, title_justify="left")
        for column in columns:
            t.add_column(column, overflow="fold")  # wrap long values, never cut them to "…"
        for row in rows:
            t.add_row(*(str(row.get(c, "")) for c in columns))
        console.print(t)

    table(f"Orders in Ambac Tracker ({len(result['orders'])})", result["orders"],
          ["number", "name", "status", "milestone", "value", "company"])
    table(f"Companies ({len(result['companies'])})", result["companies"], ["id", "name", "website", "phone"])
    table(f"Customer contacts ({len(result['contacts'])})", result["contacts"], ["id", "email", "name"])
    # The four counts share one column, as in `ambac-hubspot history`: eight columns break
    # words at 80 columns.
    table("Sync history", [{**run, "deals": ", ".join(
        f"{run[k]} {k}" for k in ("created", "updated", "skipped", "failed") if run[k]) or "none"}
        for run in result["sync_history"]], ["id", "kind", "status", "deals", "seconds"])
    moved = result["moved_deal"]
    console.print(f"The deal moved to closed won ({moved['id']}, {moved['name']!r}) became order "
                  f"[bold]{result['order_from_moved_deal']}[/] at the next sync, and deal "
                  f"{result['webhook_deal']['id']} became [bold]{result['order_from_webhook']}[/] "
                  f"{result['webhook_to_order_ms']} ms after its webhook, with no sync at all.")
    console.print(f"Demo finished in {result['seconds']} s.")
    if result["host_dir"]:
        # Plain text, not rich markup: a path a person copies must not be wrapped or styled.
        console.print(f"The reference host is kept in {result['host_dir']} (tenant "
                      f"{result['tenant_id']}); the sandbox it talked to has stopped. Look "
                      f"around with: ambac-hubspot status --host-dir {result['host_dir']} "
                      f"--tenant {result['tenant_id']}", markup=False, soft_wrap=True)
