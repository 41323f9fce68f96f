"""The double's integration models, importable from ``integrations.models`` as in the host."""

from .config import IntegrationConfig

__all__ = ["IntegrationConfig"]
