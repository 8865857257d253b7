"""Auth housekeeping."""

from __future__ import annotations

import structlog

from servicecycle.auth import service
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks, utc_from_timestamp

log = structlog.get_logger(__name__)


@tasks.periodic(cron="23 3 * * *", periodic_id="auth.remove_expired")
@tasks.task(name="auth.remove_expired", queueing_lock="auth.remove_expired", retry=RETRY)
async def remove_expired(timestamp: int) -> None:
    """Nightly: delete expired sessions and sign-in failures older than a day."""
    async with unit_of_work(sessions()) as session:
        removed = await service.remove_expired(session, now=utc_from_timestamp(timestamp))
    log.info("auth.expired_removed", **removed)
