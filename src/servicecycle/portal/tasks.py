"""The portal's housekeeping."""

from __future__ import annotations

import structlog

from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import sessions, tasks, utc_from_timestamp
from servicecycle.portal import service

log = structlog.get_logger(__name__)


@tasks.periodic(cron="17 3 * * *", periodic_id="portal.remove_expired")
@tasks.task(name="portal.remove_expired", queueing_lock="portal.remove_expired")
async def remove_expired(timestamp: int) -> None:
    """Nightly: delete ended customer sessions, spent links and old rate-limit records."""
    async with unit_of_work(sessions()) as session:
        removed = await service.remove_expired(session, now=utc_from_timestamp(timestamp))
    log.info("portal.expired_removed", **removed)
