"""A HubSpot emulator on loopback for tests, benchmarks and demos.

Standard library and attrs only; it must never import the HubSpot SDK (clients under test do).

    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        hs.seed(deals=100)
        client = HubSpot(access_token=hs.access_token, host=hs.base_url)
"""

from __future__ import annotations

from ._auth import App
from ._controls import Faults, RateLimits, RequestRecord, Stats
from ._sandbox import Sandbox
from ._server import SERVED_OPERATIONS
from ._webhooks import DeliveryAttempt, Subscription, Webhooks, sign_v1, sign_v3

__all__ = [
    "SERVED_OPERATIONS",
    "App",
    "DeliveryAttempt",
    "Faults",
    "RateLimits",
    "RequestRecord",
    "Sandbox",
    "Stats",
    "Subscription",
    "Webhooks",
    "sign_v1",
    "sign_v3",
]
