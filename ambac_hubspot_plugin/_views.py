"""JSON views of the plugin's records for the admin API, its routes and the CLI: runs, jobs,
conflicts and outcomes as JSON-ready data, with every secret of the tenant scrubbed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._field_sync import field_values

if TYPE_CHECKING:
    from ._inbound_records import Outcome
    from .host import Company
    from .settings import Settings
    from .store import ConflictRecord, Job, Link

__all__ = ["company_json", "conflict_json", "iso", "job_json", "outcome_json", "run_json",
           "scrub_secrets", "secret_values"]


def secret_values(settings: Settings) -> list[str]:
    """Every secret string of the settings (to scrub them from anything shown)."""
    from .settings import secret_values as of_settings

    return of_settings(settings)


def scrub_secrets(data: Any, secrets: list[str]) -> Any:
    """``data`` with every string of ``secrets`` in it replaced by ``***``, at any depth."""
    if not secrets:
        return data
    if isinstance(data, str):
        for secret in secrets:
            data = data.replace(secret, "***")
        return data
    if isinstance(data, Mapping):
        return {key: scrub_secrets(value, secrets) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [scrub_secrets(value, secrets) for value in data]
    return data


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def run_json(run: Any) -> dict[str, Any]:
    """One sync run as JSON-ready data, with its duration."""
    duration = (run.ended_at - run.started_at).total_seconds() if run.ended_at else None
    return {"id": run.id, "kind": run.kind, "status": str(run.status),
            "started_at": iso(run.started_at), "ended_at": iso(run.ended_at),
            "duration_seconds": duration, "created": run.created, "updated": run.updated,
            "skipped": run.skipped, "failed": run.failed, "error": run.error}


def job_json(job: Job) -> dict[str, Any]:
    """One queued or dead job as JSON-ready data."""
    return {"id": job.id, "kind": job.kind, "state": str(job.state), "attempts": job.attempts,
            "max_attempts": job.max_attempts, "record": job.dedupe_key, "payload": job.payload,
            "last_error": job.last_error, "created_at": iso(job.created_at)}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {"deal_id": outcome.deal_id, "action": outcome.action, "reason": outcome.reason,
            "order_id": outcome.order_id, "fields": list(outcome.fields)}


def conflict_json(record: ConflictRecord) -> dict[str, Any]:
    """One conflict (open or decided) as JSON-ready data."""
    import attrs

    return dict(json.loads(json.dumps(attrs.asdict(record), default=str)))


def company_json(host_id: str, company: Company | None, link: Link | None,
                 host_fields: frozenset[str]) -> dict[str, Any]:
    """A host company with its HubSpot link and the values the plugin keeps for it: the linked
    HubSpot company's values the host has no field for (``kept``: e.g. domain, phone, address)."""
    return {
        "id": host_id,
        "name": None if company is None else company.name,
        "description": None if company is None else company.description,
        "external_id": None if company is None else company.external_id,
        "in_host": company is not None,
        "hubspot_id": None if link is None else link.hubspot_id,
        "kept": {} if link is None else {k: v for k, v in field_values(link.synced).items()
                                                if k not in host_fields},
        "linked_at": None if link is None else iso(link.created_at),
    }
