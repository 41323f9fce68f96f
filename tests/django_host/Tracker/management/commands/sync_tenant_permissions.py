"""``manage.py sync_tenant_permissions``: reset every preset group to its preset."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from Tracker.groups import sync_permissions


class Command(BaseCommand):
    help = "Reset every tenant's preset groups to their preset permissions."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{sync_permissions(options['database'])} groups reset")
