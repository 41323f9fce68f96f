"""A 5,000-deal backfill killed with SIGKILL at random moments, then run to the end.

The sandbox runs in this process; the sync runs in child processes (``tests/_crash_child.py``)
that open a ReferenceHost on one shared data dir, as a restarted host would. Each child is
killed after a seeded random delay; a last child runs the backfill to the end. The state left
behind must be the state one uninterrupted run leaves: one order per won deal, every company
and contact the sync created linked to its HubSpot record, every link pointing at a record.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_crash_child.py"

WON_DEALS = 5_000
OPEN_DEALS = 300
COMPANIES = 1_000
CONTACTS = 2_500
KILLS = 5
# Seconds between the child saying "ready" and the kill. An uninterrupted backfill of these
# deals takes about 8 s on the 2-core machine this was tuned on, so the five kills land inside
# it and cut it at different places (inside a chunk of 1,000 deals, near a checkpoint, while
# re-reading a chunk after a resume). A faster machine may finish a round before its kill:
# the test needs three real cuts, not five.
KILL_DELAY = (0.3, 2.2)
# After a kill, seconds between the resumed child's first commit and its kill (it waited up to
# 10 s for the killed one's claims; from its first commit it makes about 2,000 orders a second).
RESUMED_KILL_DELAY = (0.05, 0.8)
SEED = 4_2026


@attrs.frozen
class Portal:
    """What the test put in the sandbox, to compare the host against."""

    portal_id: str
    won: tuple[str, ...]
    open: tuple[str, ...]
    company_of: dict[str, str]  # won deal -> its (primary) HubSpot company
    contacts_of: dict[str, tuple[str, ...]]  # won deal -> its HubSpot contacts
    email_of: dict[str, str]  # HubSpot contact -> email


@attrs.frozen
class Kill:
    """One killed child: when it was killed, how it ended, how many orders existed then."""

    delay: float
    returncode: int
    orders: int


def _fill(hubspot: Sandbox, rng: random.Random) -> Portal:
    """Companies, contacts, won deals in two pipelines and some open deals, all unique.

    Names, domains and emails are unique so that no HubSpot record legitimately shares a host
    record with another (the "used without a link" duplicate case is tested elsewhere).
    """
    production = hubspot.add_pipeline("Production", [
        {"id": "p-quote", "label": "Quote", "probability": "0.3", "isClosed": "false"},
        {"id": "p-won", "label": "Released", "probability": "1.0", "isClosed": "true"},
    ])
    companies = [
        hubspot.add_object("companies", {
            "name": f"Crash Test Works {i:04d}", "domain": f"crash{i:04d}.example",
            "phone": f"+1 555 {i:04d}", "city": "Cleveland"})
        for i in range(COMPANIES)
    ]
    email_of: dict[str, str] = {}
    contacts_by_company: dict[int, list[str]] = {}
    for i in range(CONTACTS):
        email = f"buyer{i:04d}@crash{i % COMPANIES:04d}.example"
        contact = hubspot.add_object("contacts", {"email": email, "firstname": f"Buyer{i}"},
                                     {"companies": [companies[i % COMPANIES]]})
        email_of[contact] = email
        contacts_by_company.setdefault(i % COMPANIES, []).append(contact)
    won: list[str] = []
    company_of: dict[str, str] = {}
    contacts_of: dict[str, tuple[str, ...]] = {}
    for i in range(WON_DEALS):
        pipeline, stage = (production, "p-won") if rng.random() < 0.2 else ("default", "closedwon")
        index = rng.randrange(COMPANIES)
        pool = contacts_by_company[index]
        contacts = tuple(rng.sample(pool, min(len(pool), rng.choice((0, 1, 1, 2)))))
        has_company = rng.random() >= 0.02
        associations = {"contacts": list(contacts)}
        if has_company:
            associations["companies"] = [companies[index]]
        deal = hubspot.add_object("deals", {
            "dealname": f"Crash order {i:05d}", "pipeline": pipeline, "dealstage": stage,
            "amount": f"{100 + i}.50", "deal_currency_code": "USD",
            "closedate": "2026-03-02T00:00:00.000Z"}, associations)
        won.append(deal)
        if has_company:
            company_of[deal] = companies[index]
        contacts_of[deal] = contacts
    open_deals = [
        hubspot.add_object("deals", {
            "dealname": f"Open {i}",
            **({"pipeline": production, "dealstage": "p-quote"} if i % 2
               else {"pipeline": "default", "dealstage": "contractsent"})},
            {"companies": [companies[rng.randrange(COMPANIES)]]})
        for i in range(OPEN_DEALS)
    ]
    return Portal(str(hubspot.portal_id), tuple(won), tuple(open_deals), company_of,
                  contacts_of, email_of)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def _child(data_dir: Path, tenant: int, stderr: IO[str]) -> Iterator[subprocess.Popen[str]]:
    """A running sync child; gone (killed if need be) and reaped when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(tenant)],
        stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO_ROOT, env=_child_env(),
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()


def _wait_for_progress(services: Any, proc: subprocess.Popen[str], orders: int, timeout: float = 30) -> None:
    """Wait until the host has more than ``orders`` orders (or the child has ended)."""
    deadline = time.monotonic() + timeout
    while len(services.list_orders()) <= orders and proc.poll() is None:
        assert time.monotonic() < deadline, f"the resumed backfill made no order for {timeout} s"
        time.sleep(0.05)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line; fails the test if none comes in time."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the sync child said nothing for {timeout} s"
    return proc.stdout.readline().strip()


def _portal_users(host: ReferenceHost, tenant: str) -> list[str]:
    """Every portal user of the tenant; read from the host's file because the host contract
    has no "list contacts" call (contacts are only ever looked up by id or email)."""
    with sqlite3.connect(f"file:{host.database_path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT id FROM users WHERE tenant_id = ? AND user_type = 'PORTAL'",
                            (tenant,)).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def hubspot() -> Iterator[Sandbox]:
    """An unlimited sandbox on loopback, serving the children from this process."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


def test_sigkilled_backfill_resumes_to_exactly_one_order_per_won_deal(
    hubspot: Sandbox, tmp_path: Path
) -> None:
    """Killing the backfill 5 times at random points, then finishing it, leaves one correct order
    per won deal, none for open deals, and every created company and contact linked."""
    rng = random.Random(SEED)
    portal = _fill(hubspot, rng)
    data_dir = tmp_path / "host"
    with ReferenceHost(data_dir) as host:
        tenant = host.create_tenant("Crash Test Machining")
        settings = {"portal_id": portal.portal_id,
                    "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
                    "api_base_url": hubspot.base_url, "local_sandbox": True,
                    "run_background_worker": False}
        (report,) = [r for r in host.enable_plugin(tenant, "hubspot", settings) if r is not None]
        assert report.ok, report
        # The children own the store from here on; this process only reads the host's rows.
        host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()
        services = host.services(tenant)

        kills: list[Kill] = []
        with (tmp_path / "children.stderr").open("w+") as stderr:
            for _ in range(KILLS):
                delay = rng.uniform(*KILL_DELAY)
                with _child(data_dir, tenant, stderr) as proc:
                    assert _read_line(proc, 60) == "ready"
                    if kills:
                        # The killed child's claims (the emails and domains of its chunk) last up
                        # to 10 s, and this one waits for them: count from its first commit.
                        _wait_for_progress(services, proc, kills[-1].orders)
                        delay = rng.uniform(*RESUMED_KILL_DELAY)
                    time.sleep(delay)  # the random point of the kill is the point of this test
                    proc.send_signal(signal.SIGKILL)
                    returncode = proc.wait(30)
                kills.append(Kill(delay, returncode, len(services.list_orders())))

            with _child(data_dir, tenant, stderr) as final:
                assert _read_line(final, 60) == "ready"
                counts_line = _read_line(final, 120)
                returncode = final.wait(30)
            stderr.seek(0)
            assert returncode == 0, stderr.read()[-4000:]
        counts = json.loads(counts_line)
        assert counts["failed"] == 0, counts

        # The kills really cut the backfill short, at different points.
        cut = [k for k in kills if k.returncode == -signal.SIGKILL and 0 < k.orders < WON_DEALS]
        assert len(cut) >= 3, kills
        assert [k.orders for k in kills] == sorted(k.orders for k in kills), kills

        # Exactly one order per won deal, none for the open ones.
        orders = services.list_orders()
        external = [o.external_id for o in orders]
        assert len(external) == len(set(external)), "duplicate orders"
        expected = {f"hubspot:{portal.portal_id}:deal:{d}": d for d in portal.won}
        assert set(external) == set(expected)
        order_of_deal = {expected[o.external_id]: o for o in orders}

        starts = host.start()  # reopen the plugin's store here, now that no child runs
        assert all(s.error is None for s in starts), starts
        runtime = host.plugin_manager.get_plugin(plugin_module.RUNTIME_NAME).runtime
        try:
            store = runtime.store_for(tenant)
            deal_links = store.get_links_by_hubspot(tenant, portal.portal_id, "deal",
                                                    [*portal.won, *portal.open])
            assert set(deal_links) == set(portal.won)
            assert all(deal_links[d].host_id == order_of_deal[d].id for d in portal.won)

            # Companies: one per HubSpot company of a won deal, each linked to it, no others.
            wanted_companies = set(portal.company_of.values())
            company_links = store.get_links_by_hubspot(tenant, portal.portal_id, "company",
                                                       sorted(wanted_companies))
            assert set(company_links) == wanted_companies
            companies = services.list_companies()
            assert len(companies) == len(wanted_companies)
            by_host_company = {link.host_id: hid for hid, link in company_links.items()}
            for company in companies:
                hubspot_id = by_host_company.get(company.id)
                assert hubspot_id is not None, f"orphan company {company}"
                assert company.external_id == f"hubspot:{portal.portal_id}:company:{hubspot_id}"

            # Contacts: one portal user per HubSpot contact of a won deal, each linked to it.
            wanted_contacts = {c for cs in portal.contacts_of.values() for c in cs}
            contact_links = store.get_links_by_hubspot(tenant, portal.portal_id, "contact",
                                                       sorted(wanted_contacts))
            assert set(contact_links) == wanted_contacts
            users = _portal_users(host, tenant)
            assert len(users) == len(wanted_contacts)
            by_host_contact = {link.host_id: hid for hid, link in contact_links.items()}
            for user_id in users:
                hubspot_id = by_host_contact.get(user_id)
                assert hubspot_id is not None, f"orphan portal user {user_id}"
                contact = services.get_contact(user_id)
                assert contact is not None
                assert contact.email.casefold() == portal.email_of[hubspot_id].casefold()

            # Each order points at its deal's company and (lowest-id) contact.
            for deal in portal.won:
                order = order_of_deal[deal]
                company = portal.company_of.get(deal)
                assert order.company_id == (company_links[company].host_id if company else None)
                first = min(portal.contacts_of[deal], key=int, default=None)
                assert order.customer_id == (contact_links[first].host_id if first else None)

            # No record was used without a link, nothing failed.
            problems = [e for what in ("inbound.company", "inbound.contact", "inbound.deal")
                        for e in store.read_log(tenant, what=what).entries]
            assert problems == []
        finally:
            runtime.close()
