from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from alembic import command

from servicecycle.db.engine import libpq_url
from servicecycle.db.migrate import (
    SchemaTooNew,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)


def test_migrations_build_the_schema_and_go_down_and_up_again(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database(migrate=False)
    upgrade(url)
    assert current_revision(url) == head_revision()
    command.downgrade(alembic_config(url), "base")
    with psycopg.connect(libpq_url(url)) as conn:
        left = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert left == [("alembic_version",)]
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_a_schema_newer_than_the_code_is_refused(fresh_database: Callable[..., str]) -> None:
    url = fresh_database()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(SchemaTooNew, match=r"9999_from_the_future.*newer release"):
        upgrade(url)
