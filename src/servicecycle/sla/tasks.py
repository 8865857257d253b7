"""The due-clock sweep."""

from __future__ import annotations

import structlog

from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks
from servicecycle.sla import service

log = structlog.get_logger(__name__)
BATCH = 5000  # bench/results/sla_sweep.md: fewer, larger transactions sweep faster


@tasks.periodic(cron="* * * * *", periodic_id="sla.sweep_due_clocks")
@tasks.task(name="sla.sweep_due_clocks", queueing_lock="sla.sweep_due_clocks", retry=RETRY)
async def sweep_due_clocks(timestamp: int) -> None:
    """Every minute: warn and breach the clocks whose time has come, a batch per transaction."""
    total_warned = total_breached = 0
    while True:
        async with unit_of_work(sessions()) as session:
            warned, breached = await service.sweep(session, batch=BATCH)
        total_warned, total_breached = total_warned + warned, total_breached + breached
        if warned + breached < BATCH:
            break
    if total_warned or total_breached:
        log.info("sla.swept", warned=total_warned, breached=total_breached)
