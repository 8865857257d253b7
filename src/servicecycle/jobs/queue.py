"""The procrastinate app, built per process from the settings (never at import time).

Tasks are declared on :data:`tasks` (a Blueprint) by each domain's ``tasks`` module and
named ``"domain.action"``. A task opens its own unit of work through :func:`sessions`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from datetime import UTC, datetime

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.db.engine import libpq_url

tasks = procrastinate.Blueprint()
RETRY = procrastinate.RetryStrategy(max_attempts=6, exponential_wait=2)

_sessions: async_sessionmaker[AsyncSession] | None = None


def make_job_app(database_url: str, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate App on our database with every domain's tasks registered."""
    register_all_tasks()

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(database_url),
        min_size=1,
        max_size=pool_size,
        kwargs={"application_name": "servicecycle-jobs"},
    )
    app = procrastinate.App(connector=connector)
    app.add_tasks_from(tasks, namespace="")
    return app


def register_all_tasks() -> None:
    """Import every ``servicecycle.<domain>.tasks`` module; each declares its tasks on
    :data:`tasks`. Found by name, so this low module needs no import of higher domains."""
    import servicecycle

    for module in pkgutil.iter_modules(servicecycle.__path__):
        if module.ispkg and importlib.util.find_spec(f"servicecycle.{module.name}.tasks"):
            importlib.import_module(f"servicecycle.{module.name}.tasks")


def bind_sessions(factory: async_sessionmaker[AsyncSession] | None) -> None:
    """Give tasks in this process the session factory they open units of work with."""
    global _sessions
    _sessions = factory


def sessions() -> async_sessionmaker[AsyncSession]:
    if _sessions is None:
        raise RuntimeError("no session factory bound: call bind_sessions() when starting a worker")
    return _sessions


def utc_from_timestamp(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)
