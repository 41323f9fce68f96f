"""The connection test: each check of a tenant's HubSpot setup, reported on its own.

Every check answers ``ok``, ``warning``, ``failed`` or ``skipped`` with a one-line summary and,
unless it passed, what to do about it. The ``fix`` texts match the entries of
``docs/troubleshooting.md`` (its headings are the check names), so an admin who reads a failed
check can look it up there. No check ever shows a secret.

The checks run in order and a check whose premise failed is skipped rather than run: without
a valid token nothing else can be learned from HubSpot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._host_ids import as_host_id
from .errors import (
    ConfigError,
    HubSpotApiError,
    HubSpotAuthError,
    HubSpotIntegrationError,
    HubSpotUnavailableError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from .client import HubSpotClient, Pipeline
    from .settings import Settings
    from .store import StateStore

__all__ = ["CHECK_NAMES", "CheckReport", "CheckResult", "doc", "load_last_report", "run_checks",
           "save_report", "webhook_url"]

Status = Literal["ok", "warning", "failed", "skipped"]

CHECK_NAMES = ("token", "portal", "scopes", "pipelines", "properties", "webhook_secret", "webhook_url")
"""The checks, in the order they run (and the headings of docs/troubleshooting.md)."""

CHECKPOINT = "admin.connection_check"


def doc(page: str) -> str:
    """Name a page of ``docs/`` where a reader finds it: the docs ship in the sdist, not the wheel."""
    return f"docs/{page} in the ambac-hubspot-plugin source distribution"


DEFAULT_MOUNT_PREFIX = "/integrations"
# The scopes the sync reads with, and the object type a cheap search probes each one with.
READ_SCOPES = (("crm.objects.deals.read", "deals"), ("crm.objects.companies.read", "companies"),
               ("crm.objects.contacts.read", "contacts"))


@attrs.frozen
class CheckResult:
    """The outcome of one check; ``fix`` says what to do when it did not pass."""

    name: str
    status: Status
    summary: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Whether the check did not fail (warnings and skips do not fail a connection)."""
        return self.status != "failed"

    def to_json(self) -> dict[str, str]:
        """The check as JSON-ready data."""
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix}


@attrs.frozen
class CheckReport:
    """Every check of one connection test, and when it ran."""

    tenant_id: str
    checked_at: datetime
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return all(check.ok for check in self.checks)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        """The checks that passed with a warning."""
        return tuple(c for c in self.checks if c.status == "warning")

    def get(self, name: str) -> CheckResult:
        """The check called ``name``."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"tenant_id": self.tenant_id, "checked_at": self.checked_at.isoformat(),
                "ok": self.ok, "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckReport:
        """Rebuild a report saved with :meth:`to_json`."""
        return cls(as_host_id(data["tenant_id"], "a saved check's tenant_id"),
                   datetime.fromisoformat(data["checked_at"]),
                   tuple(CheckResult(c["name"], c["status"], c["summary"], c.get("fix", ""))
                         for c in data["checks"]))


def webhook_url(public_base_url: str, tenant_id: str, mount_prefix: str = DEFAULT_MOUNT_PREFIX) -> str:
    """The URL to paste into the HubSpot app's webhook settings for one tenant."""
    prefix = "/" + mount_prefix.strip("/") if mount_prefix.strip("/") else ""
    return f"{public_base_url.rstrip('/')}{prefix}/hubspot/webhooks/{tenant_id}"


def _answer(exc: HubSpotIntegrationError) -> str | None:
    """An HTTP answer's identifiers (status, HubSpot's category and correlationId), or None
    when HubSpot did not answer with an error status.

    Check results reach the status view of view-only users, so the text of an answer (which a
    proxy or a wrong host may fill with anything) is never part of them.
    """
    if isinstance(exc, HubSpotApiError) and exc.status is not None and exc.status >= 400:
        return ", ".join([f"HTTP {exc.status}"] + [part for part in (
            exc.category, exc.correlation_id and f"correlationId {exc.correlation_id}") if part])
    return None


def _api_failure(name: str, exc: HubSpotIntegrationError, fix_auth: str) -> CheckResult:
    # Said once: our summary with the answer's identifiers when HubSpot answered, else the
    # client's own message, which already says what happened ("could not talk to HubSpot
    # at ...", "HubSpot refused the credentials: ..."); the kind of error picks what to do.
    answer = _answer(exc)

    def summary(ours: str) -> str:
        return f"{ours} ({answer})" if answer else str(exc)

    if isinstance(exc, HubSpotAuthError):
        return CheckResult(name, "failed", summary("HubSpot refused the credentials"), fix_auth)
    if isinstance(exc, RateLimitedError):
        return CheckResult(name, "warning", summary("HubSpot rate-limited the check"),
                           "Another integration may be using the portal's API budget; run the "
                           "check again in a minute.")
    if isinstance(exc, HubSpotUnavailableError):
        return CheckResult(name, "failed", summary("cannot reach HubSpot"),
                           "Check api_base_url, this server's outbound network access (proxy, "
                           "firewall, DNS) and https://status.hubspot.com.")
    return CheckResult(name, "failed", summary("HubSpot answered with an error"),
                       "Look up the correlationId with HubSpot support if it persists.")


_REAUTH_FIX = ("Rotate the access token in HubSpot (a project-based app: the app's Auth page; "
               "a legacy private app: Settings > Integrations > Private Apps > the app; a service "
               "key: Development > Keys > Service keys) and paste it into the credentials; for "
               f"OAuth, reconnect the app to get a new refresh token. See {doc('credentials.md')}.")

#: ``credentials.kind`` -> what the token check calls it and what it cannot do (docs/credentials.md).
CREDENTIAL_NOTES = {
    "private_app": "a private app token (legacy app: unsupported from September 2027)",
    "project_app": "a project-based app's access token",
    "service_key": "a service key (no webhooks, no CRM card)",
    "oauth": "an OAuth app",
}


def _check_token(client: HubSpotClient, settings: Settings) -> CheckResult:
    try:
        client.test_connection()
    except HubSpotIntegrationError as exc:
        return _api_failure("token", exc, _REAUTH_FIX)
    note = CREDENTIAL_NOTES.get(getattr(settings.credentials, "kind", ""))
    return CheckResult("token", "ok", "HubSpot accepted the credentials" + (f": {note}" if note else ""))


def _check_portal(client: HubSpotClient, settings: Settings) -> CheckResult:
    try:
        actual = client.account_portal_id()
    except HubSpotAuthError as exc:
        return CheckResult("portal", "warning", f"HubSpot did not say which account the credentials belong "
                           f"to ({_answer(exc) or exc}), so portal_id {settings.portal_id} is not checked",
                           "Make sure portal_id is the account id shown in HubSpot's account menu: every "
                           f"order is filed under it. See {doc('troubleshooting.md')}.")
    except HubSpotIntegrationError as exc:
        return _api_failure("portal", exc, _REAUTH_FIX)
    if actual != settings.portal_id:
        return CheckResult(
            "portal", "failed", f"the credentials belong to HubSpot account {actual}, not to portal_id "
            f"{settings.portal_id}; nothing is synced until they match",
            f"Set portal_id to {actual} if this is the account to connect, or paste a token of account "
            f"{settings.portal_id}. See {doc('troubleshooting.md')} before changing the portal_id of a "
            "tenant that has synced.")
    return CheckResult("portal", "ok", f"the credentials belong to account {actual}, the portal_id")


def _check_scopes(client: HubSpotClient, now: datetime) -> CheckResult:
    missing: list[str] = []
    for scope, object_type in READ_SCOPES:
        try:
            # A search for changes after now is one cheap call that needs the read scope.
            next(iter(client.iter_modified(object_type, now, [])), None)
        except HubSpotAuthError:
            missing.append(scope)
        except HubSpotIntegrationError as exc:
            return _api_failure("scopes", exc, _REAUTH_FIX)
    if missing:
        return CheckResult(
            "scopes", "failed", f"the token lacks {', '.join(missing)} (HubSpot answered 403)",
            "Edit the private app (or the OAuth app's scopes) to add "
            f"{', '.join(missing)} and crm.objects.deals.write, then paste the new token.")
    return CheckResult(
        "scopes", "ok",
        "reading deals, companies and contacts works; crm.objects.deals.write cannot be "
        "verified without writing to a deal, so it is checked by the first write-back "
        "(a missing write scope then shows as a 403 in the log)")


def _check_pipelines(client: HubSpotClient, settings: Settings) -> tuple[CheckResult, list[Pipeline]]:
    from ._deal_properties import validate_status_stage_map
    from ._inbound_records import Triggers

    try:
        pipelines = client.get_pipelines()
    except HubSpotIntegrationError as exc:
        return _api_failure("pipelines", exc, _REAUTH_FIX), []
    try:
        triggers = Triggers.from_settings(pipelines, settings.trigger_stages, settings.stage_status_map)
        validate_status_stage_map(pipelines, settings.status_stage_map)
    except ConfigError as exc:
        where = "; ".join(f"{path}: {why}" for path, why in exc.problems.items())
        return CheckResult("pipelines", "failed", f"the trigger settings do not match the portal: {where}",
                           "Fix trigger_stages / stage_status_map / status_stage_map using the "
                           "ids listed "
                           "(HubSpot: Settings > Objects > Deals > Pipelines)."), pipelines
    stages = triggers.all_stage_ids
    if not stages:
        return CheckResult("pipelines", "failed", "no deal stage triggers an order: no pipeline has "
                           "a won stage and trigger_stages names none",
                           "Set trigger_stages to the stage(s) that mean a deal is won, per "
                           "pipeline id."), pipelines
    labels = ", ".join(triggers.stage_labels.get(s, s) for s in stages)
    return CheckResult("pipelines", "ok", f"{len(pipelines)} pipeline(s); trigger stages: {labels}"), pipelines


def _check_properties(client: HubSpotClient) -> CheckResult:
    from ._deal_properties import STATUS_PROPERTY, ensure_hubspot_properties, status_options_missing

    try:
        created = ensure_hubspot_properties(client)
        # An existing property is left as it is (HubSpot answers 409): one made by a version
        # that used the labels as option values refuses every status the push writes.
        stale = status_options_missing(client.get_property("deals", STATUS_PROPERTY))
    except HubSpotAuthError as exc:
        return CheckResult("properties", "failed",
                           f"cannot create the custom properties ({_answer(exc) or exc})",
                           "Give the token the crm.schemas.deals.write scope, or create the "
                           f"properties by hand as listed in {doc('outbound.md')}.")
    except HubSpotIntegrationError as exc:
        return _api_failure("properties", exc, _REAUTH_FIX)
    if stale:
        return CheckResult(
            "properties", "failed",
            f"the deal property {STATUS_PROPERTY} has no option with the value(s) {', '.join(stale)}, "
            "so HubSpot refuses the statuses the push writes (it was made by an earlier version, "
            "whose option values were the labels)",
            f"In HubSpot (Settings > Properties > Deal properties), delete the property "
            f"{STATUS_PROPERTY} (\"Order status\"), then run this check again: it creates the property "
            "with the status values as its options and their labels shown. The outbound reconcile "
            f"then writes the linked deals' statuses again. See {doc('troubleshooting.md')}.")
    summary = f"created {', '.join(sorted(created))}" if created else "the custom properties exist"
    return CheckResult("properties", "ok", summary)


#: Credential kinds HubSpot sends no webhooks for: such a tenant learns of changes by sync only.
NO_WEBHOOK_KINDS = frozenset({"service_key"})


def _receives_webhooks(settings: Settings) -> bool:
    return getattr(settings.credentials, "kind", None) not in NO_WEBHOOK_KINDS


def _check_webhook_secret(settings: Settings) -> CheckResult:
    from ._webhooks import webhook_secret

    if not _receives_webhooks(settings):
        return CheckResult(
            "webhook_secret", "warning",
            "HubSpot sends no webhooks to service keys: changes arrive only with the scheduled "
            f"sync (every {settings.sync_interval_seconds} s)",
            "For real-time changes, connect with an app that has webhook subscriptions (a "
            "project-based app, credentials.kind = project_app, or an OAuth app, see "
            f"{doc('credentials.md')}) instead of the service key.")
    if webhook_secret(settings) is None:
        return CheckResult(
            "webhook_secret", "warning",
            "no webhook client secret is set: webhook deliveries are refused (503) and changes "
            f"arrive only with the scheduled sync (every {settings.sync_interval_seconds} s)",
            "Copy the app's client secret (HubSpot app > Auth) into webhook_client_secret.")
    return CheckResult("webhook_secret", "ok", "a webhook client secret is set")


def _check_webhook_url(settings: Settings, tenant_id: str, mount_prefix: str) -> CheckResult:
    if not _receives_webhooks(settings):
        return CheckResult("webhook_url", "skipped",
                           "skipped: service keys receive no webhooks, so there is no URL to paste",
                           "See the webhook_secret check.")
    if not settings.public_base_url:
        return CheckResult(
            "webhook_url", "warning",
            "public_base_url is not set, so the webhook URL cannot be given",
            "Set public_base_url to the https address HubSpot reaches this host at.")
    url = webhook_url(settings.public_base_url, tenant_id, mount_prefix)
    return CheckResult("webhook_url", "ok", f"paste {url} as the target URL of the app's webhook "
                       "subscriptions (deal, company and contact changes)")


def run_checks(
    settings: Settings, client: HubSpotClient, tenant_id: str, *, clock: Callable[[], datetime],
    mount_prefix: str = DEFAULT_MOUNT_PREFIX, checks: Sequence[str] = CHECK_NAMES,
) -> CheckReport:
    """Run the connection checks named in ``checks`` (all by default), in order.

    :param settings: the tenant's validated settings.
    :param client: a client built from them.
    :param tenant_id: the tenant (it is part of the webhook URL).
    :param clock: tz-aware UTC now.
    :param mount_prefix: where the host mounts plugin routes (part of the webhook URL).
    """
    now = clock()
    results: list[CheckResult] = []
    token = _check_token(client, settings) if "token" in checks else None
    reachable = token is None or token.status == "ok"
    skipped = CheckResult("", "skipped", "skipped: the credentials check did not pass",
                          "Fix the token check first.")
    if token is not None:
        results.append(token)
    if "portal" in checks:
        results.append(_check_portal(client, settings) if reachable else attrs.evolve(skipped, name="portal"))
    if "scopes" in checks:
        results.append(_check_scopes(client, now) if reachable else attrs.evolve(skipped, name="scopes"))
    if "pipelines" in checks:
        results.append(_check_pipelines(client, settings)[0] if reachable
                       else attrs.evolve(skipped, name="pipelines"))
    if "properties" in checks:
        results.append(_check_properties(client) if reachable
                       else attrs.evolve(skipped, name="properties"))
    if "webhook_secret" in checks:
        results.append(_check_webhook_secret(settings))
    if "webhook_url" in checks:
        results.append(_check_webhook_url(settings, tenant_id, mount_prefix))
    return CheckReport(tenant_id, now, tuple(results))


def save_report(store: StateStore, portal_id: str, report: CheckReport) -> None:
    """Keep the report as the tenant's last connection check (shown by the status view)."""
    store.set_checkpoint(report.tenant_id, portal_id, CHECKPOINT, json.dumps(report.to_json()))


def load_last_report(store: StateStore, tenant_id: str, portal_id: str) -> CheckReport | None:
    """The tenant's last saved connection check, or None."""
    saved = store.get_checkpoint(tenant_id, portal_id, CHECKPOINT)
    return None if saved is None else CheckReport.from_json(json.loads(saved.value))
