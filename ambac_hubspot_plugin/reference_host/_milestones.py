"""The reference host's milestone templates: per-tenant lists of steps an order goes through.

The real host keeps an order's progress as ``current_milestone``, a step of one of the tenant's
``MilestoneTemplate``s; the customer's progress bar is built from the step's place in it. The
host's admins make the templates; here :meth:`~._host.ReferenceHost.create_milestone_template`
does, and :meth:`~._host.ReferenceHost.set_order_milestone` moves an order along.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..host import Milestone
from ._db import Database, milestone_of
from ._records import new_uuid7
from ._validate import check_text

__all__ = ["create_template", "template_milestones"]

NAME_MAX = 100
"""The longest template or milestone name the reference host keeps."""


def create_template(db: Database, tenant_id: str, name: str, steps: Sequence[str],
                    now: datetime) -> list[Milestone]:
    """Create a template of ``steps`` (in order) for the tenant; return its milestones."""
    check_text("name", name, max_length=NAME_MAX, required=True)
    if isinstance(steps, str) or not steps:
        raise ValueError("a milestone template needs a sequence of at least one step name")
    for step in steps:
        check_text("steps", step, max_length=NAME_MAX, required=True)
    template_id = new_uuid7()
    with db.write() as conn:
        conn.execute("INSERT INTO milestone_templates (id, tenant_id, name, created_at) VALUES (?, ?, ?, ?)",
                     (template_id, tenant_id, name, now.isoformat()))
        for position, step in enumerate(steps, start=1):
            conn.execute("INSERT INTO milestones (id, tenant_id, template_id, name, position) "
                         "VALUES (?, ?, ?, ?, ?)", (new_uuid7(), tenant_id, template_id, step, position))
    return template_milestones(db, tenant_id, template_id)


def template_milestones(db: Database, tenant_id: str, template_id: str) -> list[Milestone]:
    """The milestones of one template of the tenant, first step first."""
    conn = db.connection()
    rows = conn.execute("SELECT id FROM milestones WHERE tenant_id = ? AND template_id = ? ORDER BY position",
                        (tenant_id, template_id)).fetchall()
    found = [milestone_of(conn, row["id"]) for row in rows]
    return [m for m in found if m is not None]
