"""Sending queued mail."""

from __future__ import annotations

import structlog

from servicecycle.channels.email import outbox
from servicecycle.config import get_settings
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import sessions, tasks

log = structlog.get_logger(__name__)


def smtp_settings() -> outbox.SmtpSettings:
    settings = get_settings()
    return outbox.SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        sender=settings.mail_from,
    )


@tasks.periodic(cron="* * * * *", periodic_id="channels.send_mail")
@tasks.task(name="channels.send_mail", queueing_lock="channels.send_mail")
async def send_mail(timestamp: int) -> None:
    """Every minute: hand queued mail to the SMTP server (failures retry with backoff)."""
    async with unit_of_work(sessions()) as session:
        sent, failed = await outbox.deliver_due(session, smtp_settings())
    if sent or failed:
        log.info("mail.delivered", sent=sent, failed=failed)
