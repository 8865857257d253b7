"""Sending due survey invitations, every minute."""

from __future__ import annotations

import structlog

from servicecycle.config import Settings, get_settings
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import sessions, tasks
from servicecycle.surveys import service

log = structlog.get_logger(__name__)


def mailer(settings: Settings) -> service.Mailer:
    """Links point at the public address (``SERVICECYCLE_BASE_URL``), else the local one."""
    base = settings.base_url or f"http://{settings.host}:{settings.port}"
    return service.Mailer(keyring=settings.keyring(), base_url=base, sender=settings.mail_from)


@tasks.periodic(cron="* * * * *", periodic_id="surveys.send_due")
@tasks.task(name="surveys.send_due", queueing_lock="surveys.send_due")
async def send_due(timestamp: int) -> None:
    """Every minute: queue the mail of due survey invitations (the mail job sends it)."""
    async with unit_of_work(sessions()) as session:
        sent, skipped = await service.send_due(session, mailer(get_settings()))
    if sent or skipped:
        log.info("surveys.sent", sent=sent, skipped=skipped)
