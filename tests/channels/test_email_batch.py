"""Mail in, many at a time (``batch.receive_many``): the same outcomes as one mail after
another, one ticket per Message-ID, and a mail the database refuses does not cost the others."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.automation import service as automation
from servicecycle.channels.email import batch, intake
from servicecycle.channels.email.batch import FAILED, receive_many
from servicecycle.channels.models import InboundMail, OutboundMail
from servicecycle.customers import service as customers
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.tickets.models import Attachment, Message, Ticket
from servicecycle.tickets.storage import DatabaseStorage
from tests.channels.faults import refuse_break_me

STORAGE = DatabaseStorage()


def mail(sender: str, subject: str, body: str, *, html: str | None = None, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "help@desk.example", subject
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


@pytest.fixture
def together(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch must be stored together: falling back to one mail at a time fails the test."""

    async def alone(*args: object) -> None:
        raise AssertionError("the batch fell back to one mail at a time")

    monkeypatch.setattr(batch, "_alone", alone)


async def take(db: AsyncSession, raws: list[bytes]) -> list[tuple[str, int | None]]:
    outcomes = await receive_many(db, raws, storage=STORAGE, max_file_bytes=1_000_000)
    return [(o.outcome, o.ticket_id) for o in outcomes]


async def count(db: AsyncSession, model: type[object], *where: object) -> int:
    return int(
        await db.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]
    )


async def test_a_batch_threads_dedups_and_refuses_as_one_mail_after_another(
    db: AsyncSession, together: None
) -> None:
    existing = await intake.receive(
        db,
        mail("old@example.com", "Older problem", "still broken", Message_ID="<old@example.com>"),
        storage=STORAGE,
        max_file_bytes=1_000_000,
    )
    raws = [
        mail("ann@example.com", "Parcel late", "Where is it?", Message_ID="<a1@example.com>"),
        mail("bob@example.com", "Invoice", "Wrong total", html="<p>Wrong <b>total</b></p>"),
        # answers the first mail of this very batch
        mail("ann@example.com", "Re: Parcel late", "Any news?", In_Reply_To="<a1@example.com>"),
        mail("old@example.com", "Re: Older problem", "hello?", In_Reply_To="<old@example.com>"),
        b"Subject: no sender\r\n\r\nnobody\r\n",
        mail("robot@example.com", "Out of office", "away", Auto_Submitted="auto-replied"),
        # the same Message-ID as the first: stored once
        mail("ann@example.com", "Parcel late", "Where is it?", Message_ID="<a1@example.com>"),
        mail("old@example.com", "Re: Older problem", "and again", In_Reply_To="<old@example.com>"),
    ]

    got = await take(db, raws)

    first = got[0][1]
    assert [o for o, _ in got] == [
        "ticket",
        "ticket",
        "reply",
        "reply",
        "rejected",
        "ignored",
        "duplicate",
        "reply",
    ]
    assert got[2][1] == first and got[6][1] == first
    assert got[3][1] == got[7][1] == existing.ticket_id
    assert await count(db, Ticket, Ticket.subject == "Parcel late") == 1
    assert await count(db, Message, Message.ticket_id == existing.ticket_id) == 3
    assert await count(db, Message, Message.ticket_id == first) == 2
    html = await db.scalar(select(Message.body_html).where(Message.ticket_id == got[1][1]))
    assert html is not None and "<b>total</b>" in html
    # each new ticket acknowledged once, the replies not
    assert (
        await count(
            db,
            OutboundMail,
            OutboundMail.kind == "acknowledgement",
            OutboundMail.ticket_id == first,
        )
        == 1
    )
    logged = (
        await db.scalars(
            select(InboundMail.outcome).where(InboundMail.id > 0).order_by(InboundMail.id)
        )
    ).all()
    assert sorted(logged) == sorted(["ticket"] + [o for o, _ in got if o != "duplicate"])
    events = (await db.scalars(select(Event.kind).where(Event.kind.like("mail.%")))).all()
    assert events.count("mail.reply") == 3 and events.count("mail.rejected") == 1
    # senders became customers once each; the robot did not
    people = await customers.find_many_by_email(
        db, ["ann@example.com", "bob@example.com", "robot@example.com"]
    )
    assert sorted(people) == ["ann@example.com", "bob@example.com"]


async def test_the_same_message_id_twice_in_one_batch_makes_one_ticket(
    db: AsyncSession, together: None
) -> None:
    raw = mail("dup@example.com", "Twice", "sent twice", Message_ID="<twice@example.com>")

    got = await take(db, [raw, raw, raw])

    assert [o for o, _ in got] == ["ticket", "duplicate", "duplicate"]
    assert len({t for _, t in got}) == 1
    assert await count(db, Ticket, Ticket.subject == "Twice") == 1
    assert await count(db, InboundMail, InboundMail.message_id == "<twice@example.com>") == 1


async def test_a_new_sender_writing_twice_in_a_batch_is_one_customer(
    db: AsyncSession, together: None
) -> None:
    got = await take(
        db,
        [
            mail("Cleo New <cleo@example.com>", "First", "one"),
            mail("cleo@example.com", "Second", "two"),
        ],
    )
    assert [o for o, _ in got] == ["ticket", "ticket"]
    requesters = (
        await db.scalars(select(Ticket.requester_id).where(Ticket.id.in_([t for _, t in got])))
    ).all()
    assert len(set(requesters)) == 1


async def test_a_mail_the_database_refuses_fails_alone_and_the_others_are_stored(
    db: AsyncSession,
) -> None:
    await refuse_break_me(db)
    raws = [
        mail("g1@example.com", "Good one", "fine", Message_ID="<g1@example.com>"),
        mail("x@example.com", "Break me", "hostile", Message_ID="<x@example.com>"),
        mail("g2@example.com", "Good two", "fine", Message_ID="<g2@example.com>"),
    ]

    outcomes = await receive_many(db, raws, storage=STORAGE, max_file_bytes=1_000_000)

    assert [o.outcome for o in outcomes] == ["ticket", FAILED, "ticket"]
    assert "disk full (test)" in (outcomes[1].reason or "")
    assert await count(db, Ticket, Ticket.subject.in_(["Good one", "Good two"])) == 2
    # nothing of the refused mail is kept: no ticket, no customer's ticket, no log row
    assert await count(db, Ticket, Ticket.subject == "Break me") == 0
    assert await count(db, InboundMail, InboundMail.message_id == "<x@example.com>") == 0

    await db.execute(text("DROP TRIGGER refuse_break_me ON inbound_mails"))
    again = await receive_many(db, raws, storage=STORAGE, max_file_bytes=1_000_000)
    assert [o.outcome for o in again] == ["duplicate", "ticket", "duplicate"]


async def test_a_reply_in_a_batch_that_falls_back_is_stored_on_its_ticket(
    db: AsyncSession,
) -> None:
    """The batch wrote the reply's ticket change before another mail failed: after the
    rollback the reply is stored alone against the ticket as it really is."""
    first = await intake.receive(
        db,
        mail("ann@example.com", "Parcel", "where is it?", Message_ID="<p1@example.com>"),
        storage=STORAGE,
        max_file_bytes=1_000_000,
    )
    await db.flush()
    before = await db.scalar(select(Ticket.version).where(Ticket.id == first.ticket_id))
    await refuse_break_me(db)
    raws = [
        mail(
            "ann@example.com",
            "Re: Parcel",
            "any news?",
            In_Reply_To="<p1@example.com>",
            Message_ID="<p2@example.com>",
        ),
        mail("x@example.com", "Break me", "hostile", Message_ID="<x2@example.com>"),
    ]

    outcomes = await receive_many(db, raws, storage=STORAGE, max_file_bytes=1_000_000)

    assert [(o.outcome, o.ticket_id) for o in outcomes] == [
        ("reply", first.ticket_id),
        (FAILED, None),
    ]
    assert await count(db, Message, Message.ticket_id == first.ticket_id) == 2
    after = await db.scalar(select(Ticket.version).where(Ticket.id == first.ticket_id))
    assert after == (before or 0) + 1


async def test_a_mail_with_nul_characters_is_stored_with_them_removed(db: AsyncSession) -> None:
    nul = (
        b"From: eve@example.com\r\nTo: help@desk.example\r\n"
        b"Subject: =?utf-8?q?bad=00subject?=\r\nMessage-ID: <nul@example.com>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>hi\x00 there</p>\r\n"
    )
    outcomes = await receive_many(
        db,
        [nul, mail("g@example.com", "Good", "fine", Message_ID="<g9@example.com>")],
        storage=STORAGE,
        max_file_bytes=1_000_000,
    )
    assert [o.outcome for o in outcomes] == ["ticket", "ticket"]
    assert await count(db, Ticket, Ticket.subject == "badsubject") == 1


async def test_a_rule_on_a_reply_moves_the_ticket_as_it_does_for_one_mail(
    db: AsyncSession, together: None
) -> None:
    """The status a reply leads to is decided after its message.added subscribers, as
    add_message decides it: a rule that opens the ticket is not undone by the batch."""
    first = await intake.receive(
        db,
        mail("ann@example.com", "Parcel", "where is it?", Message_ID="<r1@example.com>"),
        storage=STORAGE,
        max_file_bytes=1_000_000,
    )
    await automation.create_rule(
        db,
        name="Open on any message",
        kind="trigger",
        events=["message.added"],
        conditions=[],
        actions=[{"type": "set_status", "value": "open"}],
        actor=Actor.system("test"),
    )
    raws = [
        mail(
            "ann@example.com",
            "Re: Parcel",
            "news?",
            In_Reply_To="<r1@example.com>",
            Message_ID="<r2@example.com>",
        ),
        mail("zed@example.com", "Other", "hello", Message_ID="<z1@example.com>"),
    ]
    assert [o for o, _ in await take(db, raws)] == ["reply", "ticket"]
    assert await db.scalar(select(Ticket.status).where(Ticket.id == first.ticket_id)) == "open"
    changes = (
        await db.scalars(
            select(Event.data)
            .where(Event.subject_id == str(first.ticket_id), Event.kind == "status.changed")
            .order_by(Event.id)
        )
    ).all()
    assert [(c["from"], c["to"]) for c in changes] == [("new", "open")]


async def test_files_of_mails_taken_together_arrive_on_their_messages(
    db: AsyncSession, together: None
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "f@example.com",
        "help@desk.example",
        "Files",
    )
    message.set_content("two files")
    message.add_attachment(b"hello", maintype="text", subtype="plain", filename="notes.txt")
    message.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="octet-stream", filename="run.exe"
    )

    got = await take(db, [message.as_bytes(), mail("g@example.com", "Plain", "no files")])

    assert [o for o, _ in got] == ["ticket", "ticket"]
    first = await db.scalar(select(Message.id).where(Message.ticket_id == got[0][1]))
    names = (
        await db.scalars(select(Attachment.filename).where(Attachment.message_id == first))
    ).all()
    assert list(names) == ["notes.txt"]
    refused = (
        await db.scalars(
            select(Event.data).where(
                Event.kind == "attachment.refused", Event.subject_id == str(got[0][1])
            )
        )
    ).all()
    assert [d["filename"] for d in refused] == ["run.exe"]


def corpus(tag: str) -> list[bytes]:
    """Forty mails of every kind, their addresses and Message-IDs marked with ``tag``: new
    requests (plain, HTML), replies by In-Reply-To and References (also to mails of the same
    batch, and two to one ticket in a row), a stranger's answer, robots, repeats."""
    out: list[bytes] = []
    senders: list[str] = []
    for n in range(40):
        sender = f"p{n % 7}-{tag}@example.com"
        kind = n % 8
        headers: dict[str, str] = {"Message_ID": f"<{tag}-{n}@example.com>"}
        if kind in (2, 3, 7) and n >= 8:
            headers["In_Reply_To"] = f"<{tag}-{n - 8 + (kind == 7)}@example.com>"
            headers["References"] = f"<{tag}-{n - 16}@example.com> <{tag}-{n - 8}@example.com>"
            sender = senders[n - 8 + (kind == 7)]  # the same person answers
            if kind == 3 and n % 3 == 0:
                sender = f"stranger-{tag}@example.com"
        senders.append(sender)
        if kind == 4:
            headers["Auto_Submitted"] = "auto-replied"
        if kind == 5 and n >= 16:
            headers["Message_ID"] = f"<{tag}-{n - 16}@example.com>"  # a repeat
        html = f"<p>Hello <b>desk</b> {n}<script>x()</script></p>" if n % 3 == 1 else None
        out.append(mail(sender, f"Subject {n}", f"Body {n}", html=html, **headers))
    return out


def shape(outcomes: list[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    """Outcomes with ticket ids replaced by the order each ticket first appeared in."""
    seen: dict[int, int] = {}
    return [(o, None if t is None else seen.setdefault(t, len(seen))) for o, t in outcomes]


async def test_a_batch_gives_every_mail_the_outcome_it_has_alone(
    db: AsyncSession, together: None
) -> None:
    alone = []
    for raw in corpus("one"):
        got = await intake.receive(db, raw, storage=STORAGE, max_file_bytes=1_000_000)
        alone.append((got.outcome, got.ticket_id))
    mails = corpus("many")

    together = await take(db, mails[:17]) + await take(db, mails[17:])

    assert shape(together) == shape(alone), alone
    assert {o for o, _ in alone} >= {"ticket", "reply", "ignored", "duplicate"}
    for (_, mine), (_, theirs) in zip(together, alone, strict=True):
        if mine is not None and theirs is not None:
            assert await thread(db, mine) == await thread(db, theirs)


async def thread(db: AsyncSession, ticket_id: int) -> list[tuple[str, str, str, str]]:
    """A ticket's messages as stored (the tag in addresses and ids aside)."""
    rows = (
        await db.execute(
            select(Message.body_html, Message.body_text, Message.channel, Message.author_type)
            .where(Message.ticket_id == ticket_id)
            .order_by(Message.id)
        )
    ).all()
    return [(h, t, c, a) for h, t, c, a in rows]
