"""Mail in by SMTP: a real listener, real smtplib clients, answers only after the commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import intake
from servicecycle.channels.email.listener import Listener, accepts, listening
from servicecycle.channels.models import InboundMail, OutboundMail
from servicecycle.db.engine import libpq_url
from servicecycle.events.models import Event
from servicecycle.tickets.models import Attachment, Ticket
from servicecycle.tickets.storage import DatabaseStorage, Storage
from tests.channels.faults import refuse_break_me
from tests.channels.test_email_out import free_port

Sessions = async_sessionmaker[AsyncSession]


def mail(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "help@desk.example", subject
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return message


def crlf(raw: bytes) -> bytes:
    """Lines as SMTP carries them."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _send(port: int, raw: bytes, sender: str, to: str) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        return client.sendmail(sender, [to], crlf(raw))


async def send(
    listener: Listener, raw: bytes, sender: str = "dana@example.com", to: str = "help@desk.example"
) -> None:
    await asyncio.to_thread(_send, listener.port, raw, sender, to)


def _session(port: int, steps: Callable[[smtplib.SMTP], Any]) -> Any:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        return steps(client)


async def talk(listener: Listener, steps: Callable[[smtplib.SMTP], Any]) -> Any:
    """Run raw SMTP commands against the listener (in a thread: smtplib blocks)."""
    return await asyncio.to_thread(_session, listener.port, steps)


@contextlib.asynccontextmanager
async def running(
    sessions: Sessions, storage: Storage | None = None, **options: Any
) -> AsyncIterator[Listener]:
    async with listening(
        sessions,
        host="127.0.0.1",
        port=0,
        storage=storage or DatabaseStorage(),
        max_file_bytes=1_000_000,
        hostname="desk.example",
        **options,
    ) as listener:
        yield listener


async def count(db: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_a_mail_becomes_a_ticket_and_an_acknowledgement(
    sessions: Sessions, db: AsyncSession
) -> None:
    async with running(sessions) as listener:
        await send(
            listener,
            mail(
                "Dana Fox <dana@example.com>", "Parcel missing", "Where?", Message_ID="<s1@ex.com>"
            ).as_bytes(),
        )
    logged = (await db.scalars(select(InboundMail))).one()
    assert (logged.outcome, logged.sender, logged.message_id) == (
        "ticket",
        "dana@example.com",
        "<s1@ex.com>",
    )
    ticket = await db.get(Ticket, logged.ticket_id)
    assert ticket is not None and (ticket.subject, ticket.channel) == ("Parcel missing", "email")
    ack = (await db.scalars(select(OutboundMail))).one()
    assert (ack.kind, ack.to_address, ack.ticket_id) == (
        "acknowledgement",
        "dana@example.com",
        ticket.id,
    )


async def test_the_listener_adds_the_trace_headers_of_a_last_hop(
    sessions: Sessions, db: AsyncSession
) -> None:
    """The envelope recipient (help+t<n>@) threads even when the To header names someone else."""
    async with running(sessions) as listener:
        await send(
            listener, mail("owner@example.com", "Invoice", "wrong", Message_ID="<t1@x>").as_bytes()
        )
        first = (await db.scalars(select(InboundMail))).one()
        forwarded = mail("owner@example.com", "Fwd: something", "more", Message_ID="<t2@x>")
        del forwarded["To"]
        forwarded["To"] = "someone-else@example.org"
        await send(listener, forwarded.as_bytes(), to=f"help+t{first.ticket_id}@desk.example")
    second = (await db.scalars(select(InboundMail).where(InboundMail.message_id == "<t2@x>"))).one()
    assert (second.outcome, second.ticket_id) == ("reply", first.ticket_id)


async def test_the_same_message_id_twice_is_one_ticket_and_both_are_acknowledged(
    sessions: Sessions, db: AsyncSession
) -> None:
    raw = mail("eve@example.com", "Hello", "once", Message_ID="<twice@example.com>").as_bytes()
    async with running(sessions) as listener:
        await send(listener, raw)
        await send(listener, raw)  # a 250 that got lost: the sender tries again
    assert await count(db, Ticket) == 1
    assert await count(db, InboundMail) == 1


async def test_oversized_mail_is_refused_with_552_and_nothing_is_kept(
    sessions: Sessions, db: AsyncSession
) -> None:
    huge = mail("big@example.com", "Huge", "x").as_bytes() + b"x" * intake.MAX_MAIL_BYTES
    async with running(sessions) as listener:
        # an honest client declares SIZE, and is refused before sending a byte of it
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await send(listener, huge, sender="big@example.com")
        assert refused.value.smtp_code == 552
        ehlo = await talk(listener, lambda c: c.ehlo())
        assert f"SIZE {intake.MAX_MAIL_BYTES}".encode() in ehlo[1]
    small = mail("big@example.com", "Big", "\n".join(["y" * 70] * 100)).as_bytes()

    def undeclared(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail("big@example.com")  # no SIZE: the limit is met in DATA
        client.rcpt("help@desk.example")
        return client.data(crlf(small))

    async with running(sessions, max_bytes=2000) as listener:
        code, _ = await talk(listener, undeclared)
    assert code == 552
    assert await count(db, InboundMail) == 0 and await count(db, Ticket) == 0


async def test_recipients_outside_the_desk_are_refused(
    sessions: Sessions, db: AsyncSession
) -> None:
    assert accepts("Help+T12@Desk.Example", ("desk.example",))
    assert accepts("support+t9@other.example", ("support@other.example",))
    assert not accepts("help@desk.example.evil", ("desk.example",))
    assert accepts("anyone@anywhere", ())

    def two_recipients(client: smtplib.SMTP) -> tuple[Any, Any]:
        client.ehlo()
        client.mail("x@example.com")
        return client.rcpt("victim@elsewhere.example"), client.rcpt("help@desk.example")

    async with running(sessions, allowed=("desk.example",)) as listener:
        stranger, desk = await talk(listener, two_recipients)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await send(listener, mail("x@example.com", "Relay?", "x").as_bytes(), to="a@b.example")
    assert stranger[0] == 550 and desk[0] == 250
    assert await count(db, InboundMail) == 0


async def test_hostile_mail_is_kept_visible_and_the_listener_goes_on(
    sessions: Sessions, db: AsyncSession
) -> None:
    no_from = b"Subject: who am I\r\nMessage-ID: <h1@x>\r\n\r\nno From header at all\r\n"
    broken_mime = (
        b"From: x@example.com\r\nSubject: broken\r\nMessage-ID: <h2@x>\r\n"
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain;"
        b" charset=klingon\r\n\r\npart \xff\xfe one\r\n--zz"
    )
    nobody = b"Subject: bounce\r\nMessage-ID: <h3@x>\r\n\r\nno sender anywhere\r\n"
    async with running(sessions) as listener:
        await send(listener, no_from, sender="envelope@example.com")
        await send(listener, broken_mime, sender="x@example.com")
        await send(listener, nobody, sender="")  # MAIL FROM:<>, no From: nothing to answer
        await send(listener, mail("ok@example.com", "Still here?", "yes").as_bytes())
    no_from_row, broken_row, nobody_row, ok_row = (
        await db.scalars(select(InboundMail).order_by(InboundMail.id))
    ).all()
    assert (no_from_row.outcome, no_from_row.sender) == ("ticket", "envelope@example.com")
    assert broken_row.outcome == "ticket" and broken_row.message_id == "<h2@x>"
    assert nobody_row.outcome == "rejected" and "no usable sender" in (nobody_row.reason or "")
    assert ok_row.outcome == "ticket"  # the listener went on
    noted = (
        await db.scalars(
            select(Event).where(
                Event.kind == "mail.ticket", Event.subject_id == str(no_from_row.id)
            )
        )
    ).one()
    assert any("envelope sender" in problem for problem in noted.data["problems"])


class BrokenDisk(DatabaseStorage):
    async def put(self, session: AsyncSession, key: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")


async def test_a_mail_that_cannot_be_stored_gets_451_and_nothing_half_kept(
    sessions: Sessions, db: AsyncSession
) -> None:
    message = mail("f@example.com", "With a file", "see file", Message_ID="<f1@x>")
    message.add_attachment(b"hello", maintype="text", subtype="plain", filename="notes.txt")
    async with running(sessions, storage=BrokenDisk()) as listener:
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            await send(listener, message.as_bytes(), sender="f@example.com")
    assert temporary.value.smtp_code == 451
    assert await count(db, InboundMail) == 0 and await count(db, Ticket) == 0
    async with running(sessions) as listener:  # the sending server retries later: all of it
        await send(listener, message.as_bytes(), sender="f@example.com")
    assert await count(db, Ticket) == 1 and await count(db, Attachment) == 1


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # a guard against a listener that never starts, not a timing
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise AssertionError("the mail listener did not start")


async def test_the_mail_listener_command_takes_mail_and_stops_on_sigterm(
    fresh_database: Callable[..., str], tmp_path: Path
) -> None:
    url, port = fresh_database(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SERVICECYCLE_DATA_DIR": str(tmp_path),
        "SERVICECYCLE_SMTP_LISTEN_PORT": str(port),
        "SERVICECYCLE_SMTP_LISTEN_DOMAINS": "desk.example",
    }
    process = subprocess.Popen(  # noqa: ASYNC220  (waited for in a thread below)
        [str(Path(sys.executable).parent / "servicecycle"), "mail-listener"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(_wait_for_port, port, process)
        raw = mail("cli@example.com", "By the command", "hello", Message_ID="<cli1@x>").as_bytes()
        await asyncio.to_thread(_send, port, raw, "cli@example.com", "help@desk.example")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, None, 120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Mail listener stopped." in stderr
    with psycopg.connect(libpq_url(url)) as conn:
        found = conn.execute(
            "SELECT outcome FROM inbound_mails WHERE message_id = '<cli1@x>'"
        ).fetchall()
    assert found == [("ticket",)]


async def test_a_bounce_of_the_desks_own_mail_opens_no_ticket(
    sessions: Sessions, db: AsyncSession
) -> None:
    async with running(sessions) as listener:
        await send(
            listener, mail("dana@example.com", "Hello", "hi", Message_ID="<b0@x>").as_bytes()
        )
        ack = (await db.scalars(select(OutboundMail))).one()
        bounce = (
            f"From: MAILER-DAEMON@mx.example.com\r\nTo: help@desk.example\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx>\r\n"
            f"In-Reply-To: {ack.message_id}\r\nReferences: {ack.message_id}\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
            "--r\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n--r--\r\n"
        ).encode()
        await send(listener, bounce, sender="")
    logged = (
        await db.scalars(select(InboundMail).where(InboundMail.message_id == "<b1@mx>"))
    ).one()
    assert logged.outcome == "ignored" and logged.ticket_id == ack.ticket_id
    assert logged.reason == "delivery report (bounce)"
    assert await count(db, Ticket) == 1 and await count(db, OutboundMail) == 1  # nothing answered


async def until(check: Callable[[], bool]) -> None:
    for _ in range(3000):  # a guard against a hang, not a timing
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened")


async def test_mails_arriving_together_are_stored_together_and_only_a_bad_one_gets_451(
    sessions: Sessions, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servicecycle.channels.email import batch

    await refuse_break_me(db)
    together: list[int] = []
    receive_many = batch.receive_many

    async def counted(session: AsyncSession, raws: list[bytes], **options: Any) -> Any:
        together.append(len(raws))
        return await receive_many(session, raws, **options)

    monkeypatch.setattr(batch, "receive_many", counted)
    raws = [
        mail("a@example.com", "First", "one", Message_ID="<t1@x>").as_bytes(),
        mail("b@example.com", "Second", "two", Message_ID="<t2@x>").as_bytes(),
        mail("b@example.com", "Second", "two", Message_ID="<t2@x>").as_bytes(),
        mail("c@example.com", "Break me", "three", Message_ID="<t3@x>").as_bytes(),
        mail("d@example.com", "Fourth", "four", Message_ID="<t4@x>").as_bytes(),
    ]
    async with running(sessions) as listener:
        # the first mail's transaction waits until the others are waiting behind it
        receive = intake.receive
        held = asyncio.Event()

        async def slow(session: AsyncSession, raw: bytes, **options: Any) -> Any:
            if not held.is_set():
                await until(lambda: listener.handler.waiting == len(raws) - 1)
                held.set()
            return await receive(session, raw, **options)

        monkeypatch.setattr(intake, "receive", slow)
        first = asyncio.create_task(send(listener, raws[0], sender="a@example.com"))
        await until(lambda: listener.handler.busy > 0)
        results = await asyncio.gather(
            *(send(listener, raw) for raw in raws[1:]), return_exceptions=True
        )
        await first

    assert together == [4]  # the four that waited, in one transaction
    refused = results[2]
    assert isinstance(refused, smtplib.SMTPDataError) and refused.smtp_code == 451
    assert [r for i, r in enumerate(results) if i != 2] == [None, None, None]  # 250 each
    assert await count(db, Ticket, Ticket.subject.in_(["First", "Second", "Fourth"])) == 3
    assert await count(db, Ticket, Ticket.subject == "Break me") == 0
    assert await count(db, InboundMail, InboundMail.message_id == "<t2@x>") == 1
