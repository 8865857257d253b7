"""Time rules, every five minutes."""

from __future__ import annotations

import structlog

from servicecycle.automation import service
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks

log = structlog.get_logger(__name__)


@tasks.periodic(cron="*/5 * * * *", periodic_id="automation.run_time_rules")
@tasks.task(
    name="automation.run_time_rules", queueing_lock="automation.run_time_rules", retry=RETRY
)
async def run_time_rules(timestamp: int) -> None:
    """Apply the time rules ("pending 3 days -> remind") to the tickets that meet them."""
    async with unit_of_work(sessions()) as session:
        acted = await service.run_time_rules(session)
    if acted:
        log.info("automation.time_rules", tickets=acted)
