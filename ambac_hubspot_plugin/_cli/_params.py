"""Parameter checks the commands share."""

from __future__ import annotations

import click

from ..host import as_host_id

__all__ = ["host_id_param"]


def host_id_param(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check a host id given on the command line (a UUID, an integer or another opaque id)."""
    if value is None:
        return None
    try:
        return as_host_id(value, "the id")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
