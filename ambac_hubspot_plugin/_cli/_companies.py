"""``ambac-hubspot companies``: the linked companies and the values the plugin keeps for them.

A host's companies may lack fields HubSpot companies have (Ambac Tracker's have no website,
phone or address); the plugin keeps those values of each linked HubSpot company in its own
records, and these commands show them. Both need ``view_integrations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..host import VIEW_INTEGRATIONS
from ._admin import _admin, _guard, _host_options
from ._output import _emit, _table

__all__ = ["companies_group"]

_COLUMNS = ["host id", "name", "HubSpot id", "kept by the plugin"]


def _kept_text(kept: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(str(v) for v in value.values() if v)
        return str(value)

    return "; ".join(f"{key}: {text(value)}" for key, value in sorted(kept.items()) if text(value)) or "-"


def _row(c: dict[str, Any]) -> list[Any]:
    name = c["name"] if c["in_host"] else "(gone from the host)"
    return [c["id"], name, c["hubspot_id"] or "-", _kept_text(c["kept"])]


@click.group("companies")
def companies_group() -> None:
    """Linked companies and the HubSpot values the plugin keeps for them (domain, phone...)."""


@companies_group.command("list")
@_host_options
@click.option("--after", type=click.IntRange(0), default=0, help="Continue after this link id.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
def list_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                 as_user: str | None, as_json: bool, after: int, limit: int) -> None:
    """List the companies linked to HubSpot, oldest link first, with the values kept for each."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        data = _guard(lambda: admin.companies(user, after=after, limit=limit))
    _emit(data, as_json, lambda d: _table("Linked companies", _COLUMNS, [_row(c) for c in d["companies"]],
                                          empty="No companies are linked yet."))


@companies_group.command("show")
@_host_options
@click.argument("company_id")
def show_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                 as_user: str | None, as_json: bool, company_id: str) -> None:
    """Show one host company, its HubSpot link and the values the plugin keeps for it."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        data = _guard(lambda: admin.company(user, company_id))
    _emit(data, as_json, lambda d: _table(f"Company {d['id']}", ["field", "value"],
                                          [[k, v] for k, v in d.items()], empty="No fields."))
