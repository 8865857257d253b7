"""Tickets housekeeping."""

from __future__ import annotations

import structlog

from servicecycle.config import get_settings
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks, utc_from_timestamp
from servicecycle.tickets import attachments
from servicecycle.tickets.storage import storage_for

log = structlog.get_logger(__name__)


@tasks.periodic(cron="31 3 * * *", periodic_id="tickets.remove_stale_uploads")
@tasks.task(
    name="tickets.remove_stale_uploads", queueing_lock="tickets.remove_stale_uploads", retry=RETRY
)
async def remove_stale_uploads(timestamp: int) -> None:
    """Nightly: delete uploads that no message claimed within a day."""
    settings = get_settings()
    storage = storage_for(settings.attachment_storage, settings.data_dir)
    async with unit_of_work(sessions()) as session:
        removed = await attachments.remove_stale_uploads(
            session, storage, now=utc_from_timestamp(timestamp)
        )
    log.info("tickets.stale_uploads_removed", count=removed)
