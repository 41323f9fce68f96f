"""Host ids are opaque strings: every tenant_id and host_id column becomes VARCHAR(64).

Why: the real host keys tenants, orders and companies with UUIDv7s and users with integers, so
the plugin's contract takes every host id as a string (a canonical UUID, or an integer-looking
string such as "42"). An INTEGER column cannot hold a UUID, and on SQLite its INTEGER affinity
would even turn the text '42' back into the number 42 and '007' into 7: the columns themselves
must change, not only the code.

Upgrade keeps every row: each integer becomes its decimal string (42 -> '42').

- PostgreSQL: ``ALTER COLUMN ... TYPE VARCHAR(64) USING col::text``; the indexes and
  constraints on the column are rebuilt by the server, unchanged.
- SQLite cannot change a column's type, so alembic's batch mode copies the table into a new
  one (casting the values) and swaps it in; the reflected primary keys, named unique and CHECK
  constraints come along. The table's explicit indexes are set aside first and created again
  afterwards from their own stored SQL text, byte for byte: the jobs' partial unique index of
  migration 0005 must keep its exact predicate, since ``ON CONFLICT ... WHERE`` names it by it.

Downgrade converts back only when every value is an integer written the canonical way (no
leading zeros, in the old column's range), so nothing is changed or lost; otherwise it refuses,
naming the table, column and a value that an integer column cannot hold. A store that has met
the real host's UUIDs cannot go back to integer ids: restore a backup taken before upgrading.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

_STRING = sa.String(64)
_INT4 = (sa.Integer(), "integer", 2**31 - 1)
_INT8 = (sa.BigInteger(), "bigint", 2**63 - 1)

# Every column that holds a host id, with the integer type revisions 0001-0007 gave it.
COLUMNS: dict[str, dict[str, tuple[sa.types.TypeEngine[int], str, int]]] = {
    "hubspot_links": {"tenant_id": _INT4, "host_id": _INT8},
    "hubspot_checkpoints": {"tenant_id": _INT4},
    "hubspot_sync_runs": {"tenant_id": _INT4},
    "hubspot_integration_log": {"tenant_id": _INT4},
    "hubspot_jobs": {"tenant_id": _INT4},
    "hubspot_webhook_events": {"tenant_id": _INT4},
    "hubspot_webhook_portals": {"tenant_id": _INT4},
    "hubspot_webhook_refusals": {"tenant_id": _INT4},
    "hubspot_conflicts": {"tenant_id": _INT4, "host_id": _INT8},
    "hubspot_pushed_values": {"tenant_id": _INT4},
    "hubspot_webhook_batches": {"tenant_id": _INT4},
    "hubspot_claims": {"tenant_id": _INT4},
}

_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")


def _sqlite_indexes(table: str) -> list[tuple[str, str]]:
    """The table's explicit indexes as (name, CREATE INDEX text); automatic ones have no text."""
    rows = op.get_bind().execute(sa.text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
        "AND sql IS NOT NULL ORDER BY name"), {"t": table})
    return [(str(name), str(sql)) for name, sql in rows]


def _retype(to_string: bool) -> None:
    bind = op.get_bind()
    for table, columns in COLUMNS.items():
        if bind.dialect.name == "postgresql":
            for column, (int_type, pg_name, _limit) in columns.items():
                op.alter_column(
                    table, column, existing_nullable=False,
                    type_=_STRING if to_string else int_type,
                    existing_type=int_type if to_string else _STRING,
                    postgresql_using=f"{column}::{'text' if to_string else pg_name}")
            continue
        indexes = _sqlite_indexes(table)
        for name, _sql in indexes:
            op.drop_index(name, table_name=table)
        with op.batch_alter_table(table, recreate="always") as batch:
            for column, (int_type, _pg_name, _limit) in columns.items():
                batch.alter_column(column, existing_nullable=False,
                                   type_=_STRING if to_string else int_type,
                                   existing_type=int_type if to_string else _STRING)
        for _name, sql in indexes:
            op.execute(sql)


def upgrade() -> None:
    _retype(to_string=True)


def _refuse_non_integers() -> None:
    bind = op.get_bind()
    for table, columns in COLUMNS.items():
        for column, (_type, _pg_name, limit) in columns.items():
            query = f"SELECT DISTINCT {column} FROM {table}"  # noqa: S608  # names from COLUMNS
            values = bind.execute(sa.text(query)).scalars()
            for value in values:
                text = str(value)
                if not _CANONICAL_INT.fullmatch(text) or abs(int(text)) > limit:
                    raise RuntimeError(
                        f"{table}.{column} holds {text!r}, which an integer column cannot keep "
                        "as it is (host ids are strings since revision 0008); restore the backup "
                        "taken before the upgrade instead of downgrading")


def downgrade() -> None:
    _refuse_non_integers()
    _retype(to_string=False)
