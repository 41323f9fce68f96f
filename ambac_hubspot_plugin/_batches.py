"""Per-deal writes in batches of 100, where one bad input cannot hold back the others.

HubSpot refuses a whole batch (400) when one of its inputs is invalid. :func:`send_in_batches`
then sends each half again, and so on, until the bad input is alone: the others are written,
and only the bad one is reported failed, at a cost of about ``2 * log2(100)`` extra calls per
bad input. Any other failure (429 after retries, 5xx, no answer) is reported for its batch
only; the batches before and after it still go out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import HubSpotApiError, HubSpotError, RateLimitedError

__all__ = ["BATCH", "is_refusal", "is_unknown_outcome", "send_in_batches"]

T = TypeVar("T")

BATCH = 100
"""HubSpot's most inputs for one batch create or update."""


def is_refusal(exc: HubSpotError) -> bool:
    """Whether HubSpot refused a request as invalid (400): nothing of it was written."""
    return isinstance(exc, HubSpotApiError) and not isinstance(exc, RateLimitedError) and exc.status == 400


def is_unknown_outcome(exc: HubSpotError) -> bool:
    """Whether a failed write may have been done all the same: no answer, a 5xx or an answer
    that could not be read. A 4xx (a 429 included) or our own rate limiter's refusal says
    HubSpot did not do it."""
    if isinstance(exc, RateLimitedError):
        return False
    status = exc.status if isinstance(exc, HubSpotApiError) else None
    return status is None or status >= 500


def send_in_batches(
    items: Sequence[T],
    send: Callable[[Sequence[T]], None],
    failed: Callable[[Sequence[T], HubSpotError], None],
    *,
    split: Callable[[HubSpotError], bool] = is_refusal,
    size: int = BATCH,
) -> None:
    """Call ``send`` with ``items`` in slices of ``size``; report each slice that raised to
    ``failed``, after splitting refused slices (``split``) down to their bad input."""
    pending = deque(items[start : start + size] for start in range(0, len(items), size))
    while pending:
        chunk = pending.popleft()
        try:
            send(chunk)
        except HubSpotError as exc:
            if len(chunk) > 1 and split(exc):
                half = len(chunk) // 2
                pending.extendleft((chunk[half:], chunk[:half]))
            else:
                failed(chunk, exc)
