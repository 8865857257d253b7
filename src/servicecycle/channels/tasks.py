"""Sending queued mail; taking new mail from IMAP mailboxes."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels import mailboxes
from servicecycle.channels.email import imap, outbox
from servicecycle.config import get_settings
from servicecycle.db.engine import unit_of_work
from servicecycle.jobs.queue import sessions, tasks
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound
from servicecycle.kit.secrets import Keyring
from servicecycle.tickets.storage import Storage, storage_for

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


async def poll_due_mailboxes(
    factory: async_sessionmaker[AsyncSession],
    *,
    keyring: Keyring,
    storage: Storage,
    max_file_bytes: int,
) -> list[imap.PollResult]:
    """Poll each enabled mailbox whose interval has passed. Each is claimed first (a lease
    taken with SKIP LOCKED), so several workers share the mailboxes and never poll one twice."""
    async with unit_of_work(factory) as session:
        due = await mailboxes.due_ids(session, now=clock.now())
    results = []
    for mailbox_id in due:
        try:
            result = await imap.poll_mailbox(
                factory,
                mailbox_id,
                keyring=keyring,
                storage=storage,
                max_file_bytes=max_file_bytes,
                due_only=True,
            )
        except NotFound:  # deleted meanwhile
            continue
        if not result.busy:
            results.append(result)
    return results


@tasks.periodic(cron="* * * * *", periodic_id="channels.poll_mailboxes")
@tasks.task(name="channels.poll_mailboxes", queueing_lock="channels.poll_mailboxes")
async def poll_mailboxes(timestamp: int) -> None:
    """Every minute: take new mail from the IMAP mailboxes that are due."""
    settings = get_settings()
    await poll_due_mailboxes(
        sessions(),
        keyring=settings.keyring(),
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_file_bytes=settings.max_attachment_bytes,
    )
