"""The job queue's hot statements, built once with bound parameters.

Building a SQLAlchemy statement costs far more than running it: the operator overloading,
argument coercion and the cache key walk took about 3 ms per claim, for 0.1 ms of SQL.
These statements are built once at import; every value that varies arrives as a bound
parameter at execution (an *expanding* one for the ``IN`` lists), so each execution only
looks the compiled form up in the engine's compiled cache (a statement memoizes its own
cache key) and binds the values.

Lambda statements (``sa.lambda_stmt``) would cache as well, but they key on the lambda's
code and closure, whose rules (which closure values become parameters, which are baked into
the SQL) are easy to get subtly wrong; plain statements with named parameters say exactly
what varies. Statements are dialect-free: each engine compiles them for its own dialect.

Bound parameter names are not column names, which SQLAlchemy reserves for ``VALUES``/``SET``.
"""

from __future__ import annotations

import sqlalchemy as sa

from ._ports import JobState
from ._schema import jobs

__all__ = ["CLAIM_ANY", "CLAIM_KINDS", "COMPLETE", "EXTEND_LEASE", "EXTEND_LEASES", "HELD",
           "LEASE_EXPIRED"]

LEASE_EXPIRED = ("lease expired on the last allowed attempt: the worker died or hung "
                 "past its lease without completing the job")

# The states are SQL literals, not parameters: the planners (SQLite's when it prepares,
# PostgreSQL's generic plans of prepared statements) can only use the partial indexes on
# ``state = 'running'`` / ``'pending'`` when they see the value in the SQL text.
_RUNNING = sa.literal_column(f"'{JobState.RUNNING.value}'", jobs.c.state.type)
_PENDING = sa.literal_column(f"'{JobState.PENDING.value}'", jobs.c.state.type)
_DEAD = sa.literal_column(f"'{JobState.DEAD.value}'", jobs.c.state.type)

_now = sa.bindparam("now", type_=jobs.c.run_after.type)
_owner = sa.bindparam("owner", type_=jobs.c.lease_owner.type)
_expires = sa.bindparam("expires", type_=jobs.c.lease_expires_at.type)
_ids = sa.bindparam("ids", type_=jobs.c.id.type, expanding=True)
_limit = sa.bindparam("limit", type_=sa.Integer())

_expired = sa.and_(jobs.c.state == _RUNNING, jobs.c.lease_expires_at <= _now)


def _claim(*, by_kind: bool) -> sa.Update:
    # A running job even past its lease still holds its key: it is due itself and goes
    # first, else two workers would push one record at once, the older state maybe last.
    other = jobs.alias("same_key")
    key_running = sa.exists().where(
        other.c.tenant_id == jobs.c.tenant_id, other.c.kind == jobs.c.kind,
        other.c.dedupe_key == jobs.c.dedupe_key, other.c.state == _RUNNING)
    pending = sa.and_(jobs.c.state == _PENDING, jobs.c.run_after <= _now, sa.not_(key_running))
    # Pending and expired jobs are picked apart and then merged: with the two in one ``OR``
    # neither index (state, run_after) nor (state, lease_expires_at) gives the order, so
    # every claim read and sorted the whole backlog. Apart, each walks its index in order
    # and stops at ``limit``. Each locks as it goes (PostgreSQL skips rows others locked),
    # so up to ``limit`` more rows than claimed stay locked until the claim commits.
    picks = []
    for name, due in (("pending_due", pending), ("expired", _expired)):
        query = sa.select(jobs.c.id, jobs.c.run_after).where(due)
        if by_kind:
            query = query.where(jobs.c.kind.in_(sa.bindparam("kinds", expanding=True)))
        picks.append(sa.select(query.order_by(jobs.c.run_after, jobs.c.id).limit(_limit)
                               .with_for_update(skip_locked=True).cte(name)))
    due_first = sa.union_all(*picks).order_by("run_after", "id").limit(_limit).subquery("due_first")
    # Picked and leased in one statement (one round trip, one statement's worth of Python).
    # SET expressions read the row as it was: a job whose lease expired on its last allowed
    # attempt (its worker died or hung) is dead-lettered by the same statement instead of
    # leased, and comes back with state 'dead' for the caller to leave out.
    spent = sa.and_(jobs.c.state == _RUNNING, jobs.c.attempts >= jobs.c.max_attempts)
    return (
        sa.update(jobs).where(jobs.c.id.in_(sa.select(due_first.c.id)))
        .values(state=sa.case((spent, _DEAD), else_=_RUNNING),
                lease_owner=sa.case((spent, sa.null()), else_=_owner),
                lease_expires_at=sa.case((spent, sa.null()), else_=_expires),
                attempts=sa.case((spent, jobs.c.attempts), else_=jobs.c.attempts + 1),
                last_error=sa.case((spent, sa.literal(LEASE_EXPIRED, jobs.c.last_error.type)),
                                   else_=jobs.c.last_error),
                updated_at=_now)
        .returning(*jobs.c))


CLAIM_ANY = _claim(by_kind=False)
"""Lease up to ``limit`` due jobs, due first, to ``owner`` until ``expires``, at ``now``;
returns their rows in no order, the dead-lettered ones (state ``'dead'``) among them."""
CLAIM_KINDS = _claim(by_kind=True)
""":data:`CLAIM_ANY` restricted to the job kinds in the list ``kinds``."""

_held = sa.and_(jobs.c.id == sa.bindparam("job_id", type_=jobs.c.id.type),
                jobs.c.state == _RUNNING, jobs.c.lease_owner == _owner)

HELD = sa.select(jobs).where(_held).with_for_update()
"""Job ``job_id``, locked, if ``owner`` holds it; else no row."""

COMPLETE = sa.delete(jobs).where(_held)
"""Delete job ``job_id`` if ``owner`` holds it (a row count of 0 says it does not)."""

EXTEND_LEASE = sa.update(jobs).where(_held).values(lease_expires_at=_expires)
"""Move the lease of job ``job_id``, if ``owner`` holds it, to ``expires``."""

EXTEND_LEASES = (
    sa.update(jobs).where(jobs.c.id.in_(_ids), jobs.c.state == _RUNNING,
                          jobs.c.lease_owner == _owner)
    .values(lease_expires_at=_expires).returning(jobs.c.id))
"""Move the leases of those of the jobs ``ids`` that ``owner`` holds; returns their ids."""
