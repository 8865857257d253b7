"""Mail in by IMAP, against a real dovecot: tickets, no repeats, bad mail, failures, renumbering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels import mailboxes
from servicecycle.channels.email import imap
from servicecycle.channels.models import InboundMail, Mailbox
from servicecycle.channels.tasks import poll_due_mailboxes
from servicecycle.config import Settings
from servicecycle.db.engine import make_engine, make_sessionmaker
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.storage import storage_for
from tests.channels.conftest import ImapAccount, ImapServer

Sessions = async_sessionmaker[AsyncSession]


def mail(subject: str, *, sender: str = "dana@example.com", message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "help@desk.example", subject
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(f"About: {subject}")
    return message.as_bytes()


async def add_mailbox(
    sessions: Sessions, settings: Settings, account: ImapAccount, **extra: Any
) -> Mailbox:
    values: dict[str, Any] = {
        "name": f"Support {account.username}",
        "address": f"{account.username}@desk.example",
        "host": account.host,
        "port": account.port,
        "security": "none",
        "username": account.username,
        "password": account.password,
        **extra,
    }
    async with sessions() as session, session.begin():
        return await mailboxes.create_mailbox(
            session, keyring=settings.keyring(), actor=Actor.system("test"), **values
        )


async def poll(sessions: Sessions, settings: Settings, box: Mailbox) -> imap.PollResult:
    return await imap.poll_mailbox(
        sessions,
        box.id,
        keyring=settings.keyring(),
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_file_bytes=settings.max_attachment_bytes,
    )


async def stored(sessions: Sessions, box: Mailbox) -> Mailbox:
    async with sessions() as session:
        return await mailboxes.get_mailbox(session, box.id)


async def subjects(db: AsyncSession) -> list[str]:
    return list((await db.scalars(select(Ticket.subject).order_by(Ticket.id))).all())


async def test_a_mail_in_the_mailbox_becomes_a_ticket_and_is_then_marked_read(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    uid = imap_account.append(mail("Printer on fire", message_id="<p1@example.com>"))
    box = await add_mailbox(sessions, settings, imap_account)

    result = await poll(sessions, settings, box)

    assert result.error is None and result.outcomes == {"ticket": 1}
    assert "Printer on fire" in await subjects(db)
    assert "\\Seen" in imap_account.flags(uid)
    assert imap_account.count() == 1  # never deleted
    after = await stored(sessions, box)
    assert after.received_count == 1 and after.last_error is None
    assert after.last_seen_uid >= uid and after.uid_validity is not None
    assert after.polling_until is None and after.last_success_at is not None


async def test_polling_again_takes_nothing_twice_and_then_takes_what_is_new(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    imap_account.append(mail("First", message_id="<f1@example.com>"))
    box = await add_mailbox(sessions, settings, imap_account)
    assert (await poll(sessions, settings, box)).outcomes == {"ticket": 1}

    again = await poll(sessions, settings, box)
    assert again.outcomes == {} and again.error is None

    # marked unread again by someone: a UID already taken is not taken again
    imap_account.append(mail("Second"))  # no Message-ID: only the UID keeps it single
    assert (await poll(sessions, settings, box)).outcomes == {"ticket": 1}
    assert (await poll(sessions, settings, box)).outcomes == {}
    count = await db.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.subject.in_(["First", "Second"]))
    )
    assert count == 2


async def test_the_first_poll_takes_only_the_unread_mail(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    imap_account.append(mail("Old and read"), flags="(\\Seen)")
    imap_account.append(mail("Waiting for us"))
    box = await add_mailbox(sessions, settings, imap_account)

    assert (await poll(sessions, settings, box)).outcomes == {"ticket": 1}
    found = await subjects(db)
    assert "Waiting for us" in found and "Old and read" not in found


async def test_a_malformed_mail_is_recorded_and_the_others_still_become_tickets(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    box = await add_mailbox(sessions, settings, imap_account)
    await poll(sessions, settings, box)  # the first poll fixes the starting point
    good1 = imap_account.append(mail("Good one", message_id="<g1@example.com>"))
    bad = imap_account.append(b"Subject: no sender at all\r\n\r\n\x00\xff garbage\r\n")
    good2 = imap_account.append(mail("Good two", message_id="<g2@example.com>"))

    result = await poll(sessions, settings, box)

    assert result.outcomes == {"ticket": 2, "rejected": 1} and result.error is None
    assert {"Good one", "Good two"} <= set(await subjects(db))
    rejected = await db.scalar(
        select(InboundMail).where(InboundMail.outcome == "rejected").order_by(InboundMail.id.desc())
    )
    assert rejected is not None and rejected.outcome == "rejected"
    assert "sender" in (rejected.reason or "")
    for uid in (good1, bad, good2):  # stored (the bad one as a refusal): all marked read
        assert "\\Seen" in imap_account.flags(uid)
    after = await stored(sessions, box)
    assert after.received_count == 2 and after.rejected_count == 1


BREAK_STORING = (
    """CREATE FUNCTION test_refuse_broken() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.subject = 'Break me' THEN RAISE EXCEPTION 'disk full (test)'; END IF;
      RETURN NEW;
    END $$""",
    """CREATE TRIGGER refuse_broken BEFORE INSERT ON inbound_mails
    FOR EACH ROW EXECUTE FUNCTION test_refuse_broken()""",
)


async def break_storing(db: AsyncSession) -> None:
    """Storing a mail titled "Break me" fails in the database (rolled back with the test)."""
    for statement in BREAK_STORING:
        await db.execute(text(statement))


async def test_a_mail_that_cannot_be_stored_stays_unread_and_is_retried_next_poll(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    box = await add_mailbox(sessions, settings, imap_account)
    await poll(sessions, settings, box)
    before = imap_account.append(mail("Before", message_id="<b1@example.com>"))
    broken = imap_account.append(mail("Break me", message_id="<x1@example.com>"))
    after = imap_account.append(mail("After", message_id="<a1@example.com>"))
    await break_storing(db)

    failed = await poll(sessions, settings, box)

    assert failed.outcomes == {"ticket": 2} and failed.failed == 1
    assert "\\Seen" not in imap_account.flags(broken)  # not stored, so not marked
    assert "\\Seen" in imap_account.flags(before) and "\\Seen" in imap_account.flags(after)
    assert "Break me" not in await subjects(db)
    assert (await stored(sessions, box)).failing == {str(broken): 1}

    await db.execute(text("DROP TRIGGER refuse_broken ON inbound_mails"))
    retried = await poll(sessions, settings, box)

    assert retried.outcomes == {"ticket": 1} and retried.failed == 0
    assert "Break me" in await subjects(db)
    assert "\\Seen" in imap_account.flags(broken)
    assert (await stored(sessions, box)).failing == {}


async def test_a_mail_that_keeps_failing_is_given_up_on_and_named(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    box = await add_mailbox(sessions, settings, imap_account)
    await poll(sessions, settings, box)
    broken = imap_account.append(mail("Break me", message_id="<x2@example.com>"))
    await break_storing(db)

    for _ in range(mailboxes.MAX_ATTEMPTS):
        assert (await poll(sessions, settings, box)).failed == 1
    assert (await poll(sessions, settings, box)).failed == 0  # not tried a sixth time

    row = await stored(sessions, box)
    assert row.failing == {} and f"UID {broken}" in (row.last_error or "")
    assert "disk full (test)" in (row.last_error or "")
    assert "\\Seen" not in imap_account.flags(broken)  # left on the server for a person


async def test_a_wrong_password_shows_in_last_error_and_the_poll_does_not_raise(
    sessions: Sessions,
    settings: Settings,
    db: AsyncSession,
    imap_account: ImapAccount,
) -> None:
    box = await add_mailbox(sessions, settings, imap_account, password="not-the-password")

    result = await poll(sessions, settings, box)

    assert result.error is not None and "Login failed" in result.error
    assert "AUTHENTICATIONFAILED" in result.error
    row = await stored(sessions, box)
    assert row.last_error == result.error and row.last_error_at is not None
    assert row.polling_until is None  # the lease is given back
    assert "not-the-password" not in row.password_encrypted
    await poll(sessions, settings, box)  # the same fault again: one event, not one a minute
    kinds = (
        await db.scalars(
            select(Event.kind).where(
                Event.subject_type == "mailbox", Event.subject_id == str(box.id)
            )
        )
    ).all()
    assert list(kinds).count("mailbox.failed") == 1

    async with sessions() as session, session.begin():
        row = await mailboxes.get_mailbox(session, box.id)
        await mailboxes.update_mailbox(
            session,
            row,
            changes={"password": imap_account.password},
            keyring=settings.keyring(),
            actor=Actor.system("test"),
        )
    fixed = await poll(sessions, settings, box)
    assert fixed.error is None and (await stored(sessions, box)).last_error is None


async def test_an_unreachable_server_is_an_error_not_a_crash(
    sessions: Sessions, settings: Settings, imap_server: ImapServer
) -> None:
    account = imap_server.account()
    from tests.channels.conftest import _free_port

    box = await add_mailbox(
        sessions, settings, ImapAccount(account.host, _free_port(), account.username, "x")
    )
    result = await poll(sessions, settings, box)
    assert result.error is not None and result.error.startswith("Cannot connect to 127.0.0.1:")


async def test_a_renumbered_folder_takes_its_unread_mail_without_repeats(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    imap_account.command("create", '"Support"')
    imap_account.append(mail("Before move", message_id="<r1@example.com>"), folder="Support")
    box = await add_mailbox(sessions, settings, imap_account, folder="Support")
    assert (await poll(sessions, settings, box)).outcomes == {"ticket": 1}
    old_validity = (await stored(sessions, box)).uid_validity

    # the folder is recreated: new UIDVALIDITY, UIDs start again at 1
    imap_account.command("rename", '"Support"', '"Support-old"')
    imap_account.command("create", '"Support"')
    imap_account.append(
        mail("Before move", message_id="<r1@example.com>"), folder="Support", flags="(\\Seen)"
    )
    imap_account.append(mail("Copied unread", message_id="<r1@example.com>"), folder="Support")
    fresh = imap_account.append(mail("After move", message_id="<r2@example.com>"), folder="Support")

    result = await poll(sessions, settings, box)

    assert result.outcomes == {"duplicate": 1, "ticket": 1}
    row = await stored(sessions, box)
    assert row.uid_validity != old_validity and row.last_seen_uid == fresh
    titles = await subjects(db)
    assert titles.count("Before move") == 1 and "After move" in titles
    assert "Copied unread" not in titles
    resynced = await db.scalar(
        select(Event).where(Event.kind == "mailbox.resynced", Event.subject_id == str(box.id))
    )
    assert resynced is not None
    assert (await poll(sessions, settings, box)).outcomes == {}


async def test_a_mailbox_being_polled_is_not_polled_by_another_worker(
    sessions: Sessions, settings: Settings, imap_account: ImapAccount
) -> None:
    box = await add_mailbox(sessions, settings, imap_account)
    async with sessions() as session, session.begin():
        held = await mailboxes.claim(
            session, box.id, now=clock.now(), lease=timedelta(minutes=10), due_only=False
        )
    assert held is not None

    assert (await poll(sessions, settings, box)).busy

    # a lease left behind by a crashed worker runs out
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE mailboxes SET polling_until = :t WHERE id = :id"),
            {"t": clock.now() - timedelta(seconds=1), "id": box.id},
        )
    assert not (await poll(sessions, settings, box)).busy


async def test_the_periodic_poll_takes_mail_from_due_enabled_mailboxes_only(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_server: ImapServer
) -> None:
    accounts = [imap_server.account() for _ in range(3)]
    for n, account in enumerate(accounts):
        account.append(mail(f"Periodic {n}"))
    due = await add_mailbox(sessions, settings, accounts[0])
    await add_mailbox(sessions, settings, accounts[1], enabled=False)
    later = await add_mailbox(sessions, settings, accounts[2], poll_minutes=60)
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE mailboxes SET last_polled_at = :t WHERE id = :id"),
            {"t": clock.now() - timedelta(minutes=5), "id": later.id},
        )

    run: Callable[[], Any] = lambda: poll_due_mailboxes(  # noqa: E731
        sessions,
        keyring=settings.keyring(),
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_file_bytes=settings.max_attachment_bytes,
    )
    results = await run()

    assert [r.mailbox_id for r in results] == [due.id]
    titles = await subjects(db)
    assert "Periodic 0" in titles and "Periodic 1" not in titles and "Periodic 2" not in titles
    assert await run() == []  # polled a moment ago: not due again yet


async def test_two_workers_at_once_poll_a_mailbox_only_once(
    fresh_database: Callable[..., str], settings: Settings, imap_account: ImapAccount
) -> None:
    """Two pollers on their own connections, committing for real: one claims the mailbox, the
    other is told it is busy, and each mail becomes one ticket."""
    engines = [make_engine(fresh_database(), pool_size=2)]
    engines.append(make_engine(engines[0].url.render_as_string(hide_password=False), pool_size=2))
    factories = [make_sessionmaker(engine) for engine in engines]
    try:
        box = await add_mailbox(factories[0], settings, imap_account)
        for n in range(3):
            imap_account.append(mail(f"Race {n}", message_id=f"<race{n}@example.com>"))

        results = await asyncio.gather(*(poll(factory, settings, box) for factory in factories))

        assert sorted(r.busy for r in results) == [False, True]
        assert sum(r.taken for r in results) == 3
        async with factories[1]() as session:
            count = await session.scalar(select(func.count()).select_from(Ticket))
            assert count == 3
            row = await mailboxes.get_mailbox(session, box.id)
            assert row.polling_until is None and row.received_count == 3
    finally:
        for engine in engines:
            await engine.dispose()


async def test_tls_is_checked_and_works_with_a_trusted_certificate(
    sessions: Sessions,
    settings: Settings,
    imap_server: ImapServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = imap_server.account()
    account.append(mail("Over TLS"))
    tls = await add_mailbox(sessions, settings, account, security="ssl", port=imap_server.tls_port)
    starttls = await add_mailbox(
        sessions,
        settings,
        account,
        name="Same, by STARTTLS",
        address="starttls@desk.example",
        security="starttls",
        host="localhost",
    )

    # the server's certificate is signed by an authority nobody trusts: refused, not ignored
    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.root / "server.key"))  # no CA in it
    refused = await poll(sessions, settings, tls)
    assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert account.count() == 1 and "\\Seen" not in account.flags(1)

    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.ca_file))
    assert (await poll(sessions, settings, tls)).outcomes == {"ticket": 1}
    checked = await imap.check(mailboxes.login_of(starttls, settings.keyring()))
    assert checked["messages"] == 1


async def test_a_full_mailbox_is_taken_a_batch_per_poll_and_read_mail_after_the_start_too(
    sessions: Sessions, settings: Settings, db: AsyncSession, imap_account: ImapAccount
) -> None:
    for n in range(3):
        imap_account.append(mail(f"Backlog {n}"))
    imap_account.append(mail("Read before we started"), flags="(\\Seen)")
    box = await add_mailbox(sessions, settings, imap_account)

    async def poll_two() -> imap.PollResult:
        return await imap.poll_mailbox(
            sessions,
            box.id,
            keyring=settings.keyring(),
            storage=storage_for(settings.attachment_storage, settings.data_dir),
            max_file_bytes=settings.max_attachment_bytes,
            limit=2,
        )

    first = await poll_two()
    assert first.outcomes == {"ticket": 2} and first.more
    # read by someone in their mail program before the desk polled: still new mail
    imap_account.append(mail("Read after we started"), flags="(\\Seen)")
    second = await poll_two()
    assert second.outcomes == {"ticket": 2} and not second.more
    assert (await poll_two()).outcomes == {}
    titles = await subjects(db)
    assert {"Backlog 0", "Backlog 1", "Backlog 2", "Read after we started"} <= set(titles)
    assert "Read before we started" not in titles


async def test_mail_is_stored_in_batches_and_one_bad_mail_costs_its_batch_nothing(
    sessions: Sessions,
    settings: Settings,
    db: AsyncSession,
    imap_account: ImapAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(imap, "BATCH", 3)  # seven mails: batches of 3, 3 and 1
    box = await add_mailbox(sessions, settings, imap_account)
    await poll(sessions, settings, box)
    uids = [
        imap_account.append(mail("Batch one", message_id="<bt1@example.com>")),
        imap_account.append(mail("Batch one", message_id="<bt1@example.com>")),  # again
        imap_account.append(mail("Break me", message_id="<bt2@example.com>")),
        imap_account.append(b"Subject: no sender at all\r\n\r\nnothing\r\n"),
        imap_account.append(mail("Batch two", message_id="<bt3@example.com>")),
        imap_account.append(mail("Batch three", sender="eve@example.com")),
    ]
    broken = uids[2]
    uids.append(imap_account.append(mail("Batch four", message_id="<bt4@example.com>")))
    await break_storing(db)

    result = await poll(sessions, settings, box)

    assert result.outcomes == {"ticket": 4, "duplicate": 1, "rejected": 1}
    assert result.failed == 1 and result.error is None
    for uid in uids:
        assert ("\\Seen" in imap_account.flags(uid)) is (uid != broken)
    titles = await subjects(db)
    assert titles.count("Batch one") == 1 and "Break me" not in titles
    assert {"Batch two", "Batch three", "Batch four"} <= set(titles)
    rows = (
        await db.scalars(select(InboundMail.mailbox_id).where(InboundMail.subject.like("Batch %")))
    ).all()
    assert rows and set(rows) == {box.id}  # each row names the mailbox it came from
    assert (await stored(sessions, box)).failing == {str(broken): 1}
