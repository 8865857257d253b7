"""The portal's tables as migration 0015 builds them are the tables the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from servicecycle.db.engine import libpq_url
from servicecycle.db.models import metadata


def test_migration_0015_matches_the_portal_models(database_url: str) -> None:
    engine = create_engine(
        libpq_url(database_url).replace("postgresql://", "postgresql+psycopg://", 1)
    )
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    portal = [d for d in diff if "portal" in repr(d)]
    assert portal == []
