"""Host ids: every id the host hands the plugin is an opaque string.

Ambac Tracker keys tenants, orders and companies with UUIDv7s and users with integers; its
tenant ContextVar holds a string while its ORM returns ``UUID`` objects. The contract takes
all of them as one thing, a short string, and never does arithmetic or ordering on it.
:func:`as_host_id` is the one place a value from the host becomes such a string: a ``UUID``
gives its canonical text, an ``int`` its digits, a string is kept as it is once checked.

The characters allowed are those of UUIDs, integers and common slug or prefixed ids (letters,
digits, ``-``, ``_``, ``.``), at most 64 of them and not starting with ``.``: an id is used in
URL paths, log lines and file names, where anything else could be a path or an injection.
"""

from __future__ import annotations

import re
import uuid
from typing import TypeAlias

__all__ = ["MAX_HOST_ID_LENGTH", "HostId", "as_host_id", "as_optional_host_id", "host_id_key", "is_host_id"]

HostId: TypeAlias = str
"""A host id: an opaque, non-empty string (see :func:`as_host_id`)."""

MAX_HOST_ID_LENGTH = 64
"""The longest host id the plugin keeps (a UUID is 36 characters)."""

_HOST_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def is_host_id(text: str) -> bool:
    """Whether ``text`` is a host id as the plugin keeps it (no conversion)."""
    return _HOST_ID.fullmatch(text) is not None


def as_host_id(value: object, what: str = "host id") -> str:
    """Return ``value`` as a host id string, or raise naming ``what`` and the fix.

    :param value: a ``str``, a ``uuid.UUID`` or an ``int`` (not ``bool``).
    :param what: what the value is, for the error (``"tenant_id"``, ``"order id"``...).
    :raises TypeError: for any other type (``None`` included).
    :raises ValueError: for an empty, over-long or otherwise unusable string.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, uuid.UUID | int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise TypeError(f"{what} must be a string, a UUID or an integer, not {type(value).__name__}")
    if not is_host_id(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(f"{what} {shown!r} is not a usable host id: use 1 to {MAX_HOST_ID_LENGTH} "
                         "letters, digits, '-', '_' or '.' (not first), such as a UUID or an integer")
    return text


def as_optional_host_id(value: object) -> str | None:
    """:func:`as_host_id` that keeps ``None`` (an optional reference such as ``company_id``)."""
    return None if value is None else as_host_id(value)


def host_id_key(host_id: str) -> tuple[int, int, str]:
    """Sort key giving host ids a stable "oldest first" order: integer-looking ids by their
    value (``"9"`` before ``"10"``), then every other id by its text (UUIDv7s sort by time)."""
    if host_id.isascii() and host_id.isdigit():
        return (0, int(host_id), host_id)  # "007" and "7": a stable order all the same
    return (1, 0, host_id)
