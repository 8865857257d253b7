"""System tasks: the heartbeat that proves periodic work runs."""

from __future__ import annotations

from servicecycle.db.engine import unit_of_work
from servicecycle.jobs import service
from servicecycle.jobs.queue import RETRY, sessions, tasks, utc_from_timestamp


@tasks.periodic(cron="* * * * *", periodic_id="system.heartbeat")
@tasks.task(name="system.heartbeat", queueing_lock="system.heartbeat", retry=RETRY)
async def heartbeat(timestamp: int) -> None:
    """Once a minute: note that a worker ran periodic work (read by /healthz)."""
    async with unit_of_work(sessions()) as session:
        await service.beat(session, "system.heartbeat", at=utc_from_timestamp(timestamp))
