"""The HubSpot client's retry policy: its waits stay within their bounds whatever the retry."""

from __future__ import annotations

import random

import pytest

from ambac_hubspot_plugin._retry import Failure, FailureKind
from ambac_hubspot_plugin.client import RetryPolicy


@pytest.mark.parametrize("attempt", [1024, 1025, 10_000, 99_999])
def test_a_retry_after_a_thousand_others_waits_at_most_max_delay(attempt: int) -> None:
    """A policy allowing many attempts over a long time: its 1,025th retry (and later ones)
    waits between 0 and max_delay, as the queue's backoff does, instead of raising
    OverflowError from 2 ** 1024."""
    policy = RetryPolicy(max_attempts=100_000, base_delay=0.5, max_delay=30.0,
                         max_elapsed=10.0 ** 9)
    wait = policy.next_wait(attempt, Failure(FailureKind.SERVER_ERROR), 0.0, random.Random(1),
                            idempotent=True)
    assert wait is not None and 0 <= wait <= 30.0
