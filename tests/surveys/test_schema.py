"""The surveys tables as migration 0021 makes them match the models (no drift)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from servicecycle.db import models  # noqa: F401  # every domain's tables
from servicecycle.db.base import Base
from servicecycle.db.engine import sqlalchemy_url

TABLES = {"surveys", "survey_rules", "survey_invitations", "survey_responses"}


def _table(diff: Any) -> str | None:
    for part in diff if isinstance(diff, list) else [diff]:
        for item in part[1:] if isinstance(part, tuple) else []:
            name = getattr(item, "name", None)
            table = getattr(item, "table", None)
            if table is not None and getattr(table, "name", None) in TABLES:
                return str(table.name)
            if name in TABLES:
                return str(name)
            if isinstance(item, str) and item in TABLES:
                return item
    return None


def test_migration_0021_matches_the_models(fresh_database: Callable[..., str]) -> None:
    url = sqlalchemy_url(fresh_database()).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _table(d) is not None]
    assert ours == []
