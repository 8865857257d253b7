"""Alembic, driven from code: upgrade, current revision, and the newer-schema guard."""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from servicecycle.db.engine import sqlalchemy_url

log = structlog.get_logger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer Servicecycle than this one."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "file_template",
        "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s",
    )
    config.attributes["url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()


def current_revision(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_not_newer(url: str) -> None:
    """Refuse a schema this code does not know (rolled back code on a newer database)."""
    current = current_revision(url)
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config(url))
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaTooNew(
            f"The database schema is at revision {current}, which this version of Servicecycle "
            f"does not know (its newest is {script.get_current_head()}). It was migrated by a "
            "newer release: run that release, or restore a backup made for this one."
        )


def upgrade(url: str, revision: str = "head") -> None:
    check_not_newer(url)
    before = current_revision(url)
    command.upgrade(alembic_config(url), revision)
    after = current_revision(url)
    if after != before:
        log.info("db.migrated", from_revision=before, to_revision=after)
