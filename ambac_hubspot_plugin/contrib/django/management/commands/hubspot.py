"""``manage.py hubspot <command> ...``: the ``ambac-hubspot`` commands inside Ambac Tracker.

Every command of the ``ambac-hubspot`` CLI runs here on the host's ORM
(:class:`~ambac_hubspot_plugin.contrib.django.cli.DjangoHostContext` as its ``--host-factory``),
with the same options, output and exit codes: ``manage.py hubspot status --tenant <uuid>
--json`` prints what ``ambac-hubspot status`` prints. From ``call_command`` a failing command
raises ``CommandError`` whose ``returncode`` is the CLI's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import click
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import connections


def _host_factory_defaults(command: click.Command, factory: str) -> dict[str, Any]:
    """A click ``default_map`` giving ``--host-factory`` of every command taking it ``factory``."""
    if isinstance(command, click.Group):
        nested = {name: _host_factory_defaults(sub, factory) for name, sub in command.commands.items()}
        return {name: defaults for name, defaults in nested.items() if defaults}
    return {"host_factory": factory} if any(p.name == "host_factory" for p in command.params) else {}


def _stream(wrapper: OutputWrapper) -> TextIO:
    # Django's wrapper appends a newline to every write; the CLI writes its own line endings.
    return getattr(wrapper, "_out", wrapper)  # type: ignore[no-any-return]  # a text stream


class Command(BaseCommand):
    help = ("Operate the HubSpot integration: the ambac-hubspot commands (status, check, setup, "
            "sync, log, history, replay, conflicts, companies, prune, worker) on this host. "
            "`manage.py hubspot --help` lists them.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER, metavar="command ...",
                            help="An ambac-hubspot command and its options.")

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after ``hubspot`` is the CLI's (its --settings and --help included);
        # manage.py has applied --settings/--pythonpath already.
        try:
            self._run(argv[2:], prog_name=f"{argv[0].rsplit('/', 1)[-1]} {argv[1]}")
        except CommandError as exc:
            sys.exit(exc.returncode)  # the CLI printed the error itself
        finally:
            connections.close_all()

    def handle(self, *args: str, **options: Any) -> None:
        self._run(list(args), prog_name="manage.py hubspot")

    def _run(self, args: Sequence[str], *, prog_name: str) -> None:
        from ambac_hubspot_plugin.cli import main

        from ...cli import FACTORY

        with self._streams():
            try:
                main.main(args=list(args), prog_name=prog_name, standalone_mode=True,
                          default_map=_host_factory_defaults(main, FACTORY))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if code:
                    raise CommandError(f"ambac-hubspot {' '.join(args[:1])} exited with {code}",
                                       returncode=code) from None

    @contextlib.contextmanager
    def _streams(self) -> Iterator[None]:
        with contextlib.redirect_stdout(_stream(self.stdout)), contextlib.redirect_stderr(_stream(self.stderr)):
            yield
