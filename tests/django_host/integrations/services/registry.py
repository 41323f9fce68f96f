"""The double's integration registry (HOST.md, SMOKE_FINDINGS item 7):
``settings.INTEGRATION_ADAPTERS[(provider, mode)]`` names an adapter class,
``settings.<PROVIDER>_MODE`` chooses the mode (default ``cloud``); the class is instantiated with
no arguments, once per (provider, mode), and the instance is shared."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from ..adapters.base import BaseAdapter

DEFAULT_MODE = "cloud"
_instances: dict[tuple[str, str], BaseAdapter] = {}


def adapter_mode(provider: str) -> str:
    """The mode ``settings.<PROVIDER>_MODE`` chooses for ``provider``."""
    return str(getattr(settings, f"{provider.upper()}_MODE", DEFAULT_MODE))


def get_adapter(provider: str) -> BaseAdapter:
    """The shared adapter of ``provider`` in its chosen mode."""
    key = (provider, adapter_mode(provider))
    if key not in _instances:
        adapter = import_string(settings.INTEGRATION_ADAPTERS[key])()
        if not isinstance(adapter, BaseAdapter) or not (adapter.manifest or {}).get("id"):
            raise TypeError(f"{type(adapter).__name__} is not a BaseAdapter with a manifest id")
        _instances[key] = adapter
    return _instances[key]
