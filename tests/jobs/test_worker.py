"""A real procrastinate worker on a fresh database: heartbeat, retries, failed jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import procrastinate
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.db.engine import libpq_url, make_engine, make_sessionmaker, unit_of_work
from servicecycle.jobs import service
from servicecycle.jobs.queue import bind_sessions, make_job_app


@pytest.fixture
async def committed(
    fresh_database: Callable[..., str],
) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    url = fresh_database()
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    bind_sessions(factory)
    yield url, factory
    bind_sessions(None)
    await engine.dispose()


async def test_the_heartbeat_task_records_that_periodic_work_ran(
    committed: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    url, factory = committed
    app = make_job_app(url)
    async with app.open_async():
        await app.configure_task("system.heartbeat").defer_async(timestamp=1_900_000_000)
        await app.run_worker_async(wait=False, install_signal_handlers=False, listen_notify=False)
    async with unit_of_work(factory) as session:
        state = await service.worker_state(session)
        done = await service.list_jobs(session, status="succeeded")
    assert (
        state.last_heartbeat is not None and int(state.last_heartbeat.timestamp()) == 1_900_000_000
    )
    # the worker may also have run periodic tasks that fell due; ours ran, once
    ours = [j for j in done if j["args"] == {"timestamp": 1_900_000_000}]
    assert [j["task_name"] for j in ours] == ["system.heartbeat"]


async def test_a_failing_job_is_retried_then_listed_as_failed(
    committed: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    url, factory = committed
    app = make_job_app(url)
    calls: list[int] = []

    @app.task(name="test.always_fails", retry=procrastinate.RetryStrategy(max_attempts=2, wait=0))
    async def always_fails(n: int) -> None:
        calls.append(n)
        raise RuntimeError("the remote system said no")

    async with app.open_async():
        await always_fails.defer_async(n=7)
        for _ in range(3):  # each pass runs what is due: the first try, then the retry
            await app.run_worker_async(
                wait=False, install_signal_handlers=False, listen_notify=False
            )
    async with unit_of_work(factory) as session:
        failed = await service.list_jobs(session, status="failed")
        state = await service.worker_state(session)
    assert calls == [7, 7, 7]
    assert [(j["task_name"], j["attempts"], j["args"]) for j in failed] == [
        ("test.always_fails", 3, {"n": 7})
    ]
    assert state.failed == 1


async def test_jobs_of_a_dead_worker_are_put_back_and_run(
    committed: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    url, _ = committed
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        dead = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"
            " RETURNING id"
        ).fetchone()
        assert dead is not None
        stuck = conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, worker_id)"
            " VALUES ('default', 'system.heartbeat', '{\"timestamp\": 1795000000}', 'doing', %s)"
            " RETURNING id",
            (dead[0],),
        ).fetchone()
        assert stuck is not None
    app = make_job_app(url)
    async with app.open_async():
        await app.configure_task("system.retry_stalled_jobs").defer_async(timestamp=1_900_000_000)
        for _ in range(2):
            await app.run_worker_async(
                wait=False, install_signal_handlers=False, listen_notify=False
            )
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (stuck[0],)
        ).fetchone()
    assert row == ("succeeded",)
