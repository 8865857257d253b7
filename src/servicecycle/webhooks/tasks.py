"""Sending webhook deliveries."""

from __future__ import annotations

import structlog

from servicecycle.config import get_settings
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import sessions, tasks
from servicecycle.webhooks import service

log = structlog.get_logger(__name__)


@tasks.periodic(cron="* * * * *", periodic_id="webhooks.deliver")
@tasks.task(name="webhooks.deliver", queueing_lock="webhooks.deliver")
async def deliver(timestamp: int) -> None:
    """Every minute: POST due deliveries (failures retry with backoff, up to 8 attempts)."""
    sending = service.sending_for(get_settings())
    while True:
        async with unit_of_work(sessions()) as session:
            delivered, failed = await service.deliver_due(session, sending)
        if delivered or failed:
            log.info("webhooks.delivered", delivered=delivered, failed=failed)
        if delivered + failed < 50:
            break
