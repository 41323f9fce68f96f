"""``ambac-hubspot sandbox``: run the HubSpot emulator in the foreground for demos."""

from __future__ import annotations

import sys
import threading
from typing import NoReturn

import click

from ._controls import RateLimits
from ._sandbox import Sandbox


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit 2, like the other commands' usage errors."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", default=8765, show_default=True, help="Port to listen on, 0-65535 (0 picks a free one)."
)
@click.option(
    "--portal-id", default=12345678, show_default=True, help="Portal (hub) id to emulate."
)
@click.option(
    "--seed-companies", type=click.IntRange(min=0), default=20, show_default=True,
    help="Companies to seed.",
)
@click.option(
    "--seed-contacts", type=click.IntRange(min=0), default=50, show_default=True,
    help="Contacts to seed.",
)
@click.option(
    "--seed-deals", type=click.IntRange(min=0), default=100, show_default=True,
    help="Deals to seed.",
)
@click.option("--seed", "seed_value", default=1, show_default=True, help="Random seed of the data.")
@click.option(
    "--index-lag", default=0.0, show_default=True, help="Seconds before writes show in search."
)
@click.option("--no-rate-limits", is_flag=True, help="Switch HubSpot's rate limits off.")
@click.option("--webhook-url", default=None, help="Deliver deal/company/contact webhooks here.")
def sandbox_command(
    host: str,
    port: int,
    portal_id: int,
    seed_companies: int,
    seed_contacts: int,
    seed_deals: int,
    seed_value: int,
    index_lag: float,
    no_rate_limits: bool,
    webhook_url: str | None,
) -> None:
    """Serve a seeded HubSpot sandbox until Ctrl-C."""
    if not 0 <= port <= 65535:
        _fail(f"--port must be 0-65535 (0 picks a free one), not {port}")
    limits = RateLimits.unlimited() if no_rate_limits else RateLimits()
    sandbox = Sandbox(
        portal_id, rate_limits=limits, index_lag_seconds=index_lag, host=host, port=port
    )
    try:
        sandbox.start()
    except OSError as exc:  # port in use, no such interface, no permission for the port
        _fail(f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__}); choose "
              "another --port (0 picks a free one) or --host")
    with sandbox as hs:
        hs.seed(companies=seed_companies, contacts=seed_contacts, deals=seed_deals, seed=seed_value)
        if webhook_url:
            hs.webhooks.set_target(webhook_url)
            for name in ("deal", "company", "contact"):
                for kind in ("creation", "deletion", "merge", "restore"):
                    hs.webhooks.subscribe(f"{name}.{kind}")
            for prop in ("dealstage", "amount", "closedate", "dealname", "pipeline"):
                hs.webhooks.subscribe("deal.propertyChange", prop)
        click.echo(f"base URL:      {hs.base_url}")
        # a throwaway local credential, printed so a client can be pointed at the sandbox
        click.echo(f"access token:  {hs.access_token}")
        click.echo(f"portal id:     {hs.portal_id}")
        click.echo(f"app id:        {hs.app_id}")
        if webhook_url:
            click.echo(f"client secret: {hs.client_secret}  (signs webhooks to {webhook_url})")
        click.echo("Serving; press Ctrl-C to stop.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("Stopped.")
