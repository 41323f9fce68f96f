"""What to do about each known error: the texts of ``docs/troubleshooting.md``, word for word
(``tests/test_admin_pages_activity.py`` keeps the two the same), for the activity page: the
alerts (the admins' notices) and the errors a log entry names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ERROR_FIXES", "FIXES", "fix_for"]

#: Each known error and what to do about it, word for word the "Alerts" table of
#: docs/troubleshooting.md (a test keeps the two the same).
FIXES: tuple[tuple[str, str, str], ...] = (
    ("HubSpot sync failed N times in a row", "the last N finished runs failed",
     "read the error in the message and `ambac-hubspot history`; run the check"),
    ("HubSpot refused the integration's credentials", "a 401/403 on a run or a check",
     "see `token` / `scopes` above"),
    ("N HubSpot sync jobs gave up", "dead letters reached the threshold",
     "fix the cause in the log, then `ambac-hubspot replay --all`"),
    ("N HubSpot webhook deliveries could not be read",
     "a stored delivery could not be split into events (the log's `webhook.unreadable` entry says why); "
     "it is kept",
     "upgrade the plugin (or fix what the entry names), then `ambac-hubspot replay --all`"),
    ("HubSpot webhooks have gone silent",
     "no event for longer than `alerts.webhook_silence_minutes` while the sync keeps finding changes",
     "check the app's webhook subscriptions and target URL (see `webhook_url`)"),
)

#: (words any of which in a log entry's kind or message names the error, the section of
#: docs/troubleshooting.md, what that section says to do), tried in order: the first match is
#: the fix shown beside a warning or an error.
ERROR_FIXES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("http 401", "refused the credentials"), "Check `token`",
     "Rotate the token in HubSpot (a project-based app: its Auth page; a legacy private app: Settings > "
     "Integrations > Private Apps > your app > Access token > Rotate; a service key: Development > Keys > "
     "Service keys) and paste it in `credentials.access_token`; for OAuth reconnect the app."),
    (("http 403", "lacks crm.", "missing scope"), "Check `scopes`",
     "edit the private app's scopes (Settings > Integrations > Private Apps > Scopes) and add the scopes "
     "named, plus `crm.objects.deals.write` and `crm.schemas.deals.write`; HubSpot then shows a new token "
     "to paste."),
    (("could not talk to hubspot", "cannot reach hubspot", "hubspot failed to answer"), "Check `token`",
     "Check this server's outbound HTTPS (firewall, proxy, DNS), that `api_base_url` is "
     "`https://api.hubapi.com` (or the sandbox's address in tests, with `local_sandbox`), and "
     "https://status.hubspot.com."),
    (("rate limit", "rate-limit", "http 429"), "Check `token`",
     "Run the check again in a minute; if it persists, lower that integration's use or set `account_tier` "
     "to the portal's real tier."),
    (("unknown stage", "no such pipeline"), "Check `pipelines`",
     "Use an id from the list (HubSpot: Settings > Objects > Deals > Pipelines; custom stages have numeric "
     "ids)."),
    (("ambac_order_status has no option",), "Check `properties`",
     "In HubSpot (Settings > Properties > Deal properties) delete the property `ambac_order_status` "
     "(\"Order status\") and run the check again: it creates the property with the values as options and "
     "the labels as what people see."),
    (("cannot create the custom properties",), "Check `properties`",
     "the token lacks `crm.schemas.deals.write`. Add the scope, or create the properties by hand"),
    (("no webhook client secret",), "Check `webhook_secret`",
     "Copy the client secret of the app that owns the webhook subscriptions (HubSpot developer account: the "
     "app > Auth > Client secret) into `webhook_client_secret`."),
    (("no associated company",), "Company not found",
     "Associate one and sync the deal again (or edit the order)."),
    (("must be a", "must be at most", "characters; the host allows", "mapping"), "Fields not mapping",
     "Fix the value in HubSpot (the deal is retried when it changes) or the mapping, then replay: "
     "`ambac-hubspot replay --all --kind inbound.deal`."),
)


def fix_for(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    """The troubleshooting section and the fix for a log entry (``what``, ``message``) that is
    a warning or worse and a known error; else None."""
    if entry.get("level") not in ("warning", "error"):
        return None
    text = f"{entry.get('what') or ''} {entry.get('message') or ''}".lower()
    for words, section, fix in ERROR_FIXES:
        if any(word in text for word in words):
            return section, fix
    return None
