"""The due-clock sweep."""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks
from servicecycle.sla import service

log = structlog.get_logger(__name__)
BATCH = 5000  # bench/results/sla_sweep.md: fewer, larger transactions sweep faster
WORKERS = 2  # transactions sweeping side by side (SKIP LOCKED keeps them apart)
DEADLOCK = "40P01"


async def sweep_until_done(
    factory: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    workers: int = WORKERS,
) -> tuple[int, int]:
    """Sweep in ``workers`` concurrent loops of one transaction per batch until nothing
    is due; returns (warned, breached). A failed batch rolls back alone and its clocks are
    swept next time; the first failure is raised once every loop has stopped."""

    async def loop() -> tuple[int, int]:
        warned = breached = 0
        while True:
            try:
                async with unit_of_work(factory) as session:
                    w, b = await service.sweep(session, now=now, batch=batch)
            except DBAPIError as exc:
                # escalation rules of two batches changing the same tickets in turn: the
                # database gave up one batch, whose clocks are still due; take them again
                if getattr(exc.orig, "sqlstate", None) != DEADLOCK:
                    raise
                log.warning("sla.sweep_deadlock")
                continue
            warned, breached = warned + w, breached + b
            if w < batch and b < batch:
                return warned, breached

    results = await asyncio.gather(*(loop() for _ in range(workers)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    done = [r for r in results if not isinstance(r, BaseException)]
    return sum(w for w, _ in done), sum(b for _, b in done)


@tasks.periodic(cron="* * * * *", periodic_id="sla.sweep_due_clocks")
@tasks.task(name="sla.sweep_due_clocks", queueing_lock="sla.sweep_due_clocks", retry=RETRY)
async def sweep_due_clocks(timestamp: int) -> None:
    """Every minute: warn and breach the clocks whose time has come."""
    warned, breached = await sweep_until_done(sessions())
    if warned or breached:
        log.info("sla.swept", warned=warned, breached=breached)
