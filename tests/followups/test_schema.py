"""The follow-up tables built by migration 0022 match the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.db.models import metadata

OURS = {"follow_ups", "follow_up_settings"}


def _table(diff: Any) -> str | None:
    # a diff is a tuple (op, object) or a list of (op, schema, table, column, ...) tuples
    for part in diff if isinstance(diff, tuple) else (diff[0] if diff else ()):
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if isinstance(part, str) and part in OURS:
            return part
        if name in OURS:
            return str(name)
    return None


async def test_migration_and_models_agree(db: AsyncSession) -> None:
    connection = await db.connection()

    def compare(sync: Any) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    diffs = await connection.run_sync(compare)
    ours = [d for d in diffs if _table(d) in OURS]
    assert ours == []
