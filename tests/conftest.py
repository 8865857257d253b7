"""Test database: one PostgreSQL per run (embedded, or TEST_DATABASE_URL's server).

Every test gets a connection inside a transaction that is rolled back at its end;
each request or unit of work inside the test runs in a SAVEPOINT, so a request that
fails is rolled back just as in production while the test still sees what it kept.
Tests that need committed data (a real server process, the CLI) get a fresh
database of their own through ``fresh_database``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from servicecycle.db.embedded import embedded_database
from servicecycle.db.engine import libpq_url, make_engine
from servicecycle.db.migrate import upgrade

pytest_plugins = ["tests.factories"]


def _with_database(url: str, name: str) -> str:
    return make_url(libpq_url(url)).set(database=name).render_as_string(hide_password=False)


class Server:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create_database(self, *, migrate: bool = True) -> str:
        name = f"sc_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = _with_database(self.admin_url, name)
        if migrate:
            upgrade(url)
        return url

    def drop_all(self) -> None:
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        server = Server(external)
        yield server
        server.drop_all()
        return
    data_dir = tmp_path_factory.mktemp("embedded-pg")
    with embedded_database(Path(data_dir), exclusive=True) as url:
        server = Server(_with_database(url, "postgres"))
        yield server


@pytest.fixture(scope="session")
def database_url(pg_server: Server) -> str:
    """The run's migrated database, shared by the rolled-back tests."""
    return pg_server.create_database()


@pytest.fixture
def fresh_database(pg_server: Server) -> Callable[..., str]:
    """Make a new, migrated database whose data is really committed."""
    return pg_server.create_database


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        outer = await conn.begin()
        yield conn
        await outer.rollback()


@pytest.fixture
def sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to the test's connection; each ``begin()`` is a SAVEPOINT."""
    return async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def db(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path) -> object:
    from servicecycle.config import Settings

    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
async def app(
    settings: object,
    database_url: str,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> object:
    """The real app, its requests running inside the test's transaction."""
    from servicecycle.app import create_app
    from servicecycle.jobs.queue import make_job_app
    from servicecycle.runtime import Runtime

    application = create_app(settings, database_url, run_worker=False)  # type: ignore[arg-type]
    application.state.runtime = Runtime(
        settings=settings,  # type: ignore[arg-type]
        database_url=database_url,
        engine=engine,
        sessions=sessions,
        jobs=make_job_app(database_url),
        run_worker=False,
    )
    return application


@pytest.fixture
async def client(app: object) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app)  # type: ignore[arg-type]
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
