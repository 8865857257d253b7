"""System tasks: the heartbeat that proves periodic work runs, and housekeeping."""

from __future__ import annotations

import procrastinate
import structlog

from servicecycle.db.engine import unit_of_work
from servicecycle.jobs import service
from servicecycle.jobs.queue import RETRY, sessions, tasks, utc_from_timestamp

log = structlog.get_logger(__name__)

KEEP_FINISHED_JOBS_HOURS = 24 * 7
STALLED_AFTER_SECONDS = 120


@tasks.periodic(cron="* * * * *", periodic_id="system.heartbeat")
@tasks.task(name="system.heartbeat", queueing_lock="system.heartbeat", retry=RETRY)
async def heartbeat(timestamp: int) -> None:
    """Once a minute: note that a worker ran periodic work (read by /healthz)."""
    async with unit_of_work(sessions()) as session:
        await service.beat(session, "system.heartbeat", at=utc_from_timestamp(timestamp))


@tasks.periodic(cron="*/5 * * * *", periodic_id="system.retry_stalled_jobs")
@tasks.task(
    name="system.retry_stalled_jobs",
    queueing_lock="system.retry_stalled_jobs",
    pass_context=True,
)
async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 5 minutes: put back jobs whose worker died mid-job (no heartbeat for 2 minutes)."""
    manager = context.app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS))
    for job in stalled:
        await manager.retry_job(job)
    if stalled:
        log.warning("jobs.stalled_retried", job_ids=[job.id for job in stalled])


@tasks.periodic(cron="17 3 * * *", periodic_id="system.remove_old_jobs")
@tasks.task(
    name="system.remove_old_jobs",
    queueing_lock="system.remove_old_jobs",
    pass_context=True,
    retry=RETRY,
)
async def housekeeping(context: procrastinate.JobContext, timestamp: int) -> None:
    """Nightly: delete finished jobs older than a week (failed ones stay for inspection)."""
    await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_FINISHED_JOBS_HOURS)
