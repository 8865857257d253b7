"""The chat sweep: unanswered chats are missed, chats whose visitor left end."""

from __future__ import annotations

import structlog

from servicecycle.chat import service
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import RETRY, sessions, tasks

log = structlog.get_logger(__name__)


@tasks.periodic(cron="* * * * *", periodic_id="chat.sweep")
@tasks.task(name="chat.sweep", queueing_lock="chat.sweep", retry=RETRY)
async def sweep(timestamp: int) -> None:
    """Every minute: close what nobody will answer live any more."""
    async with unit_of_work(sessions()) as session:
        missed, ended = await service.sweep(session)
    if missed or ended:
        log.info("chat.swept", missed=missed, ended=ended)
