"""``ambac-hubspot conflicts``: list, show and resolve a tenant's sync conflicts.

The host is opened like every other command's (:func:`._admin._host_options`) and each
subcommand goes through :class:`~ambac_hubspot_plugin.admin.Admin`: ``list`` and ``show`` need
``view_integrations``, ``resolve`` needs ``manage_integrations`` and records the acting user
(``--as-user``, else the host's operator) as the one who decided.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ._admin import _admin, _guard, _host_options
from ._output import _emit, _table

if TYPE_CHECKING:
    from ..admin import Admin
    from ..host import User

__all__ = ["conflicts_group"]

# Few columns so a table fits an 80-column terminal; `show` prints every field.
_COLUMNS = ["id", "record", "field", "HubSpot", "Ambac", "decision"]


def _row(c: dict[str, Any]) -> list[Any]:
    return [c["id"], f"{c['object_type']} {c['host_id']}", c["field"], repr(c["hubspot_value"]),
            repr(c["host_value"]), f"{c['decision']} ({c['status']})"]


def _render_one(c: dict[str, Any]) -> None:
    _table(f"Conflict {c['id']}", ["field", "value"], [[key, value] for key, value in c.items()],
           empty=f"Conflict {c['id']} has no fields.")


@click.group("conflicts")
def conflicts_group() -> None:
    """List, show and resolve conflicts (a field changed in HubSpot and in Ambac Tracker)."""


@conflicts_group.command("list")
@_host_options
@click.option("--all", "show_all", is_flag=True,
              help="The whole audit trail, not only open conflicts.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def list_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                 as_user: str | None, as_json: bool, show_all: bool, limit: int) -> None:
    """List open conflicts (or, with --all, every recorded one), newest first."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        rows = _guard(lambda: admin.conflicts(user, status=None if show_all else "open",
                                              limit=limit))
    title = "Conflicts (audit trail)" if show_all else "Open conflicts"
    _emit({"conflicts": rows}, as_json,
          lambda data: _table(title, _COLUMNS, [_row(c) for c in data["conflicts"]],
                              empty="No conflicts recorded." if show_all else "No open conflicts."))


def _show(admin: Admin, user: User, conflict_id: int) -> dict[str, Any]:
    return admin.conflict(user, conflict_id)


@conflicts_group.command("show")
@_host_options
@click.argument("conflict_id", type=int)
def show_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                 as_user: str | None, as_json: bool, conflict_id: int) -> None:
    """Show one conflict with both values, both timestamps and its decision."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=VIEW_INTEGRATIONS) as (admin, user, _ctx):
        data = _guard(lambda: _show(admin, user, conflict_id))
    _emit(data, as_json, _render_one)


@conflicts_group.command("resolve")
@_host_options
@click.argument("conflict_id", type=int)
@click.argument("choice", type=click.Choice(["hubspot", "ambac", "value"], case_sensitive=False))
@click.option("--value", help="With CHOICE 'value': the value to set on both sides.")
def resolve_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                    as_user: str | None, as_json: bool, conflict_id: int, choice: str,
                    value: str | None) -> None:
    """Resolve an open conflict with HubSpot's value, Ambac's or a typed --value, on both sides.

    The acting user (--as-user, else the operator) is recorded as the one who decided.
    """
    if (choice.lower() == "value") != (value is not None):
        raise click.UsageError("give --value exactly when CHOICE is 'value'")
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=MANAGE_INTEGRATIONS) as (admin, user, _ctx):
        data = _guard(lambda: admin.resolve_conflict(user, conflict_id, choice, value=value))
    _emit(data, as_json, _render_one)
