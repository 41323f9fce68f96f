"""Small helpers shared by the sandbox modules: time formatting, error answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the wall clock, tz-aware UTC."""
    return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a tz-aware datetime."""
    return int(moment.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """HubSpot's v3 datetime text: ISO 8601, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time_ms(text: str) -> int | None:
    """Epoch ms from HubSpot datetime text (epoch ms digits or ISO 8601), None if neither."""
    text = text.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def correlation_id() -> str:
    """A fresh correlation id; HubSpot's are UUIDs."""
    return str(uuid.uuid4())


class SandboxHttpError(Exception):
    """An error answer the sandbox sends back with HubSpot's error body shape."""

    def __init__(
        self,
        status: int,
        message: str,
        category: str = "VALIDATION_ERROR",
        *,
        sub_category: str | None = None,
        context: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        raw_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.sub_category = sub_category
        self.context = context
        self.headers = headers or {}
        self.extra = extra or {}
        self.raw_body = raw_body

    def body(self) -> dict[str, Any]:
        """The JSON body HubSpot sends for this error."""
        if self.raw_body is not None:
            return self.raw_body
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        body.update(self.extra)
        return body


def standard_error(
    message: str,
    category: str = "OBJECT_NOT_FOUND",
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
) -> dict[str, Any]:
    """One per-item error inside a 207 batch answer (HubSpot's ``StandardError``)."""
    error: dict[str, Any] = {
        "status": "error",
        "category": category,
        "message": message,
        "context": context or {},
        "errors": [],
        "links": {},
    }
    if sub_category:
        error["subCategory"] = sub_category
    return error
