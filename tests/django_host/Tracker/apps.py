"""The double's app config."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrackerConfig(AppConfig):
    name = "Tracker"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .groups import reset_after_migrate

        # As the host: every migrate ends by resetting the preset groups' permissions.
        post_migrate.connect(reset_after_migrate, sender=self, dispatch_uid="tracker.reset_presets")
