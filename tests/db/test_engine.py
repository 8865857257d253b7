"""The pool checks a connection that rested, and skips the check for a busy one."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from servicecycle.db.engine import libpq_url, make_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(database_url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_rested_connection_that_died_is_replaced(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, ping_after_idle=0)
    try:
        before = await _backend_pid(engine)
        _terminate(database_url, before)
        after = await _backend_pid(engine)  # no error: the check found it dead
        assert after != before
    finally:
        await engine.dispose()


async def test_a_busy_connection_is_not_checked(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, ping_after_idle=3600)
    try:
        before = await _backend_pid(engine)
        assert await _backend_pid(engine) == before
        # not rested long enough to be checked: a connection that died fails its next use
        _terminate(database_url, before)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != before  # and the pool recovers
    finally:
        await engine.dispose()
