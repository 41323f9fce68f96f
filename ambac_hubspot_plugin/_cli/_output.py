"""How the CLI prints for people (rich tables and lines) and for scripts (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

__all__ = ["_console", "_emit", "_log_entries", "_styled", "_table", "_when"]


def _emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


def _console() -> Any:
    """The console for human output. It reads no markup: values come from HubSpot and the
    host (a company named "Acme [eu] Tools" must print as that), so styles are given as
    ``style=`` or :func:`_styled`, never as ``[red]`` in the text."""
    from rich.console import Console

    return Console(markup=False)


def _styled(text: str, style: str) -> Any:
    """``text`` in ``style`` (a table cell or a line), without markup."""
    from rich.text import Text

    return Text(text, style=style)


def _table(title: str, columns: list[str], rows: list[list[Any]], *, empty: str) -> None:
    """Print a table that fits the terminal without cutting a value; ``empty`` when no rows.

    Long values wrap (words) or fold (a long token such as an id): rich's default overflow
    would cut them to "…", and a person may need the whole value.
    """
    from rich.table import Table

    console = _console()
    if not rows:
        console.print(empty)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[v if hasattr(v, "__rich__") or hasattr(v, "__rich_console__") else
                        "" if v is None else str(v) for v in row])
    console.print(table)


def _log_entries(entries: list[dict[str, Any]], *, empty: str) -> None:
    """Print log entries as a heading line each (id, time, level, kind, record), then the
    message indented below it: six columns of a table leave a message a dozen characters at 80
    columns and break kinds and records mid-word; this reads at any width and cuts nothing."""
    from rich.padding import Padding
    from rich.text import Text

    console = _console()
    if not entries:
        console.print(empty)
        return
    for entry in entries:
        heading = Text(f"#{entry['id']}", style="bold")
        for part in (_when(entry["at"]), entry["level"], entry["what"], entry["record"]):
            if part:
                heading.append(f"  {part}")
        console.print(heading, overflow="fold")
        console.print(Padding(Text(entry["message"] or ""), (0, 0, 0, 4), expand=False), overflow="fold")


def _when(iso: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` for a table (the CLI shows UTC)."""
    if not iso:
        return ""
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
