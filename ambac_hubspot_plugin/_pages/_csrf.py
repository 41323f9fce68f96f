"""CSRF tokens for the admin pages' forms, that work in any host.

A token is ``<window>.<mac>``: the number of the two-hour window it was issued in, and an
HMAC-SHA256 over the tenant id, the user id and that window, keyed with a random secret of the
tenant kept in the plugin's own store (a checkpoint, so every process of the host reads the
same key; it is never shown). A token is accepted in its window and the next one (two to four
hours), only for the same user in the same tenant. No session state and no cookie is needed:
the reference host authenticates with bearer tokens, Ambac Tracker with sessions. A POST must
also come from a page of the same site (:func:`same_origin`), as Django's own check demands;
the page routes say so to their host (``HttpRoute.verifies_csrf``), which then skips its own
CSRF check for them (see docs/admin-pages.md, "CSRF design").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..store import SqlStateStore

__all__ = ["FIELD", "KEY_CHECKPOINT", "WINDOW_SECONDS", "issue", "same_origin", "verify"]

#: The form field every POST of the pages carries.
FIELD = "csrf_token"
#: Where the tenant's key lives in the store (one per tenant and portal).
KEY_CHECKPOINT = "pages.csrf_key"
WINDOW_SECONDS = 7200


def _key(store: SqlStateStore, tenant_id: str, portal_id: str) -> bytes:
    saved = store.get_checkpoint(tenant_id, portal_id, KEY_CHECKPOINT)
    if saved is None:
        # Two processes creating it at once: the later write wins and the earlier one's tokens
        # fail once ("reload the page"), which is all a lost race costs.
        store.set_checkpoint(tenant_id, portal_id, KEY_CHECKPOINT, secrets.token_hex(32))
        saved = store.get_checkpoint(tenant_id, portal_id, KEY_CHECKPOINT)
        assert saved is not None
    return bytes.fromhex(saved.value)


def _mac(key: bytes, tenant_id: str, user_id: str, window: int) -> str:
    message = f"{tenant_id}\n{user_id}\n{window}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _window(now: datetime) -> int:
    return int(now.timestamp()) // WINDOW_SECONDS


def issue(store: SqlStateStore, tenant_id: str, portal_id: str, user_id: str, now: datetime) -> str:
    """A token for ``user_id``'s forms in this tenant, valid for two to four hours from ``now``."""
    window = _window(now)
    return f"{window}.{_mac(_key(store, tenant_id, portal_id), tenant_id, user_id, window)}"


def verify(store: SqlStateStore, tenant_id: str, portal_id: str, user_id: str, now: datetime,
           token: str | None) -> bool:
    """Whether ``token`` was issued to this user in this tenant, in this window or the last."""
    if not token or len(token) > 100:
        return False
    raw_window, _, mac = token.partition(".")
    if not (raw_window.isascii() and raw_window.isdigit()) or len(raw_window) > 12:
        return False
    window = int(raw_window)
    if window not in (_window(now), _window(now) - 1):
        return False
    expected = _mac(_key(store, tenant_id, portal_id), tenant_id, user_id, window)
    return hmac.compare_digest(expected.encode(), mac.encode())  # str: ASCII only, else TypeError


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` as a browser's ``Origin`` names it; None if it has none."""
    try:
        split = urlsplit(url.strip())
        port = split.port
    except ValueError:
        return None
    scheme, host = split.scheme.lower(), split.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def same_origin(url: str, headers: Mapping[str, str]) -> bool:
    """Whether a POST to ``url`` (the public URL) came from a page of the same origin.

    The ``Origin`` header decides when present (``null``, sent from sandboxed or privacy-sensitive
    contexts, is another origin); without it the ``Referer``. With neither, a plain-HTTP request
    passes (the token still binds it to the user), an HTTPS one does not: browsers send one of
    them on every HTTPS form POST, and Django's own check asks the same.
    """
    expected = _origin(url)
    if expected is None:
        return False
    sent = headers.get("Origin") or headers.get("Referer")
    if sent:
        return _origin(sent) == expected
    return not expected.startswith("https:")
