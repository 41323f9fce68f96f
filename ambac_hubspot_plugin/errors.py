"""The project's errors: one base class, a subclass per kind of failure.

Every error carries its context as attributes and a message that says what was wrong and
what to do about it. No error message or repr ever contains a secret (token, client secret).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "ConfigError",
    "DealChangedError",
    "DealNotFoundError",
    "HostEventNotRecordedError",
    "HostRecordError",
    "HubSpotApiError",
    "HubSpotAuthError",
    "HubSpotError",
    "HubSpotIntegrationError",
    "HubSpotUnavailableError",
    "MappingError",
    "PortalMismatchError",
    "RateLimitedError",
    "StoreError",
    "StrategyError",
    "TenantNotStartedError",
    "WebhookPayloadError",
    "WebhookSignatureError",
]


class HubSpotIntegrationError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(HubSpotIntegrationError):
    """Settings are invalid; ``problems`` maps each bad field path to what is wrong with it."""

    def __init__(self, message: str, problems: Mapping[str, str] | None = None) -> None:
        self.problems: dict[str, str] = dict(problems or {})
        if self.problems:
            lines = "\n".join(f"  - {path}: {why}" for path, why in self.problems.items())
            message = f"{message}\n{lines}"
        super().__init__(message)

    @classmethod
    def from_problems(cls, problems: Sequence[tuple[str, str]], what: str = "settings") -> ConfigError:
        """Build one error from ``(field path, what is wrong)`` pairs."""
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        return cls(f"Invalid {what} ({count} {noun}); fix each field named below:", dict(problems))


class DealNotFoundError(HubSpotIntegrationError):
    """HubSpot has no deal with this id (never had, deleted or merged away); ``deal_id`` names it."""

    def __init__(self, deal_id: str) -> None:
        self.deal_id = deal_id
        super().__init__(f"HubSpot has no deal {deal_id}; check the id (it may be deleted or merged).")


class DealChangedError(ConfigError):
    """The deal (or its company or contacts) changed in HubSpot since the reviewer's preview:
    creating its order now would not create what was reviewed. Nothing was written."""

    def __init__(self, deal_id: str) -> None:
        self.deal_id = deal_id
        super().__init__(f"HubSpot deal {deal_id} (or its company or contacts) changed since it was "
                         "reviewed; nothing was created: review it again, then create the order.")


class PortalMismatchError(ConfigError):
    """The credentials belong to another HubSpot account than the settings' ``portal_id``:
    syncing would file every record under the wrong portal. Nothing was read or written."""

    def __init__(self, portal_id: str, actual: str) -> None:
        self.portal_id, self.actual = portal_id, actual
        super().__init__(
            f"The HubSpot credentials belong to account {actual}, but portal_id is {portal_id}; "
            "nothing is synced until they match. Set portal_id to the account the token is for, "
            "or paste a token of that account.", {"portal_id": f"the token is for account {actual}"})


class StoreError(HubSpotIntegrationError):
    """The plugin's state store cannot be opened or used; ``setting`` names what to fix."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        self.setting = setting
        super().__init__(message)


class HostEventNotRecordedError(StoreError):
    """An ``ambac_*`` event hook could not record the host's event: the store is unusable.

    The host's change is committed and must stay. ``recovered`` says whether the plugin
    recovers the change by itself (order state: its reconciliation compares orders with what
    reached HubSpot once the store is back); when False (shipments, company edits) the host
    should call the hook again later, which is safe to repeat.
    """

    def __init__(self, *, tenant_id: str, record_type: str, record_id: str, event: str,
                 recovered: bool, cause: str) -> None:
        self.tenant_id = tenant_id
        self.record_type = record_type
        self.record_id = record_id
        self.event = event
        self.recovered = recovered
        then = ("Keep the host's change: the plugin pushes the order's current state to HubSpot by "
                "itself once the store answers again (its reconciliation compares orders with "
                "what it last pushed); calling the hook again later is safe too."
                if recovered else
                "Keep the host's change and call the hook again once the store answers (safe to "
                "repeat): the plugin cannot find this change by itself.")
        super().__init__(
            f"The HubSpot plugin could not record {record_type} {record_id}'s {event!r} event of "
            f"tenant {tenant_id}: its state store is unavailable ({cause}). {then} Check that "
            "the store (setting store_url) is reachable.", setting="store_url")


class TenantNotStartedError(HubSpotIntegrationError):
    """An ``ambac_*`` event hook came for a tenant this process has not taken up.

    The tenant has the plugin enabled (another process enabled it: its store binding exists),
    but the host never called ``ambac_plugin_started`` (or ``ambac_plugin_enabled``) for it in
    this process, so the event was not recorded. The host's change is committed and must stay;
    the host starts the tenant here and calls the hook again (safe to repeat).
    """

    def __init__(self, *, tenant_id: str, record_type: str, record_id: str, event: str) -> None:
        self.tenant_id = tenant_id
        self.record_type = record_type
        self.record_id = record_id
        self.event = event
        super().__init__(
            f"The HubSpot plugin did not record {record_type} {record_id}'s {event!r} event of "
            f"tenant {tenant_id}: the tenant has the plugin enabled, but not in this process. "
            "The host must call ambac_plugin_started (or ambac_plugin_enabled) for the tenant "
            "in every process before its event hooks; keep the host's change, start the tenant "
            "here and call the hook again (safe to repeat).")


class HubSpotError(HubSpotIntegrationError):
    """Base of every failure talking to HubSpot (or the sandbox standing in for it)."""


class HubSpotApiError(HubSpotError):
    """HubSpot answered with an error status or an answer we cannot read."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.operation = operation
        details = [
            f"{name}={value}"
            for name, value in (
                ("operation", operation),
                ("status", status),
                ("category", category),
                ("correlationId", correlation_id),
            )
            if value is not None
        ]
        super().__init__(f"{message} ({', '.join(details)})" if details else message)


class HubSpotAuthError(HubSpotApiError):
    """The credentials were refused (401/403): the token is wrong, expired or lacks a scope."""


class HubSpotUnavailableError(HubSpotApiError):
    """HubSpot could not be reached or kept failing (network error, 5xx) after retries."""


class RateLimitedError(HubSpotApiError):
    """HubSpot answered 429 and retries did not get through within their bounds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        policy_name: str | None = None,
        **kwargs: object,
    ) -> None:
        self.retry_after = retry_after
        self.policy_name = policy_name
        super().__init__(message, **kwargs)  # type: ignore[arg-type]  # kwargs are the parent's keywords


class MappingError(HubSpotIntegrationError):
    """A HubSpot value cannot become a host value; says which field, which value, what to change."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {message}")


class StrategyError(MappingError):
    """A strategy (``kind`` ``mapping`` or ``conflict``) failed on one record: it raised, or
    answered with something the engine cannot use. Names the strategy, the record and what it
    did; like any :class:`MappingError`, that record fails (logged, retried, replayable) and the
    rest of the run goes on."""

    def __init__(self, kind: str, strategy: str, record: str, problem: str) -> None:
        self.kind = kind
        self.strategy = strategy
        self.record = record
        self.field = f"{kind} strategy {strategy!r}"
        self.value = record
        HubSpotIntegrationError.__init__(self, f"the {kind} strategy {strategy!r} {problem} ({record})")


class HostRecordError(HubSpotIntegrationError):
    """The host refused a record it was asked to write (a limit or a rule of the host's).

    Hosts raise it from their services so the plugin can log which field failed and why.
    """

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {message}")


class WebhookPayloadError(HubSpotIntegrationError, ValueError):
    """A webhook body is not a JSON array of valid events; ``path`` points at the culprit.

    A ``ValueError`` too: the inbox keeps a stored delivery its split refuses with one.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class WebhookSignatureError(HubSpotIntegrationError):
    """A webhook request's signature is missing, malformed, stale or does not match."""
