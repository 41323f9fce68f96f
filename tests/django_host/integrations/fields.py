"""The double's ``EncryptedCharField``: text encrypted at rest with Fernet (HOST.md), keyed by the
``FIELD_ENCRYPTION_KEY`` setting. Python code sees plain text; the column holds the token."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import models


def _fernet() -> Fernet:
    return Fernet(settings.FIELD_ENCRYPTION_KEY)


class EncryptedCharField(models.CharField):
    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return _fernet().encrypt(str(value).encode()).decode()

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        return _fernet().decrypt(value.encode()).decode()
