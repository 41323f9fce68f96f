"""The local Redis (127.0.0.1:6379) for tests that need one, each on a database of its own."""

from __future__ import annotations

import importlib.util
import os
import socket

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RATE_LIMIT_DB = int(os.environ.get("AMBAC_TEST_REDIS_DB", "11"))
"""The database of the rate limiter's and the Celery worker's tests (``AMBAC_TEST_REDIS_DB``
chooses another, for runs sharing one Redis)."""


def redis_unavailable_reason() -> str | None:
    """Why Redis tests cannot run here, or None when they can."""
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed here (the [django] extra brings it)"
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5).close()
    except OSError:
        return f"no Redis answers at {REDIS_HOST}:{REDIS_PORT}"
    return None


def redis_url(db: int = RATE_LIMIT_DB) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
