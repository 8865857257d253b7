"""Reads and writes about background work: heartbeats, workers, failed jobs."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.jobs.models import Heartbeat
from servicecycle.kit import clock

WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


async def beat(session: AsyncSession, name: str, *, at: datetime) -> None:
    stmt = insert(Heartbeat).values(name=name, beat_at=at, worker=WORKER_NAME)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Heartbeat.name],
        # periodic jobs can run out of order (a late retry); the beat never goes back
        set_={
            "beat_at": func.greatest(Heartbeat.beat_at, stmt.excluded.beat_at),
            "worker": stmt.excluded.worker,
        },
    )
    await session.execute(stmt)


@dataclass(frozen=True)
class WorkerState:
    workers_alive: int
    last_heartbeat: datetime | None
    queued: int
    failed: int

    @property
    def healthy(self) -> bool:
        return self.workers_alive > 0


async def worker_state(
    session: AsyncSession, *, alive_within: timedelta = timedelta(seconds=60)
) -> WorkerState:
    """How many workers beat recently, when periodic work last ran, and the queue's size."""
    since = clock.now() - alive_within
    row = (
        await session.execute(
            text(
                "SELECT"
                " (SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat >= :since),"
                " (SELECT beat_at FROM heartbeats WHERE name = 'system.heartbeat'),"
                " (SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'),"
                " (SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed')"
            ),
            {"since": since},
        )
    ).one()
    return WorkerState(workers_alive=row[0], last_heartbeat=row[1], queued=row[2], failed=row[3])


async def list_jobs(
    session: AsyncSession, *, status: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """Jobs newest first, with attempts and the time of their last event."""
    rows = await session.execute(
        text(
            "SELECT j.id, j.task_name, j.queue_name, j.status::text AS status, j.attempts, j.args,"
            " j.scheduled_at, (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id)"
            " AS last_event_at"
            " FROM procrastinate_jobs j"
            " WHERE CAST(:status AS text) IS NULL OR j.status::text = :status"
            " ORDER BY j.id DESC LIMIT :limit"
        ),
        {"status": status, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]
