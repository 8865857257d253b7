"""Engines and units of work. The caller owns the transaction; services only flush."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def sqlalchemy_url(url: str) -> URL:
    """Any ``postgres://`` / ``postgresql://`` URL, as a SQLAlchemy URL on psycopg 3."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+psycopg")


def libpq_url(url: str) -> str:
    """The same URL in the plain form libpq, psycopg and pg_dump understand."""
    return sqlalchemy_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


PING_AFTER_IDLE = 10.0  # seconds a pooled connection may rest before it is checked


def make_engine(
    url: str, *, pool_size: int = 10, ping_after_idle: float = PING_AFTER_IDLE
) -> AsyncEngine:
    """A pooled engine whose connections are checked before use only after resting."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"application_name": "servicecycle"},
    )
    _ping_when_rested(engine.sync_engine, ping_after_idle)
    return engine


def _ping_when_rested(engine: Engine, after: float) -> None:
    """Check a connection on checkout if it rested in the pool for ``after`` seconds or more.

    A connection that dies while resting (the server restarted, a firewall dropped it) is
    replaced before a request sees it, as ``pool_pre_ping`` would do; a busy pool's
    connections, back within milliseconds, skip the round trip ``pool_pre_ping`` spends on
    every checkout (about a tenth of a new ticket's CPU). A connection that dies while in
    use fails that one transaction, and SQLAlchemy then drops the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def rested(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None or time.monotonic() - since < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the failure, this connection is unusable
            raise DisconnectionError("pooled connection failed its check") from exc


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    async with factory() as session, session.begin():
        yield session
