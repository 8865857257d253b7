"""Mail in, many at a time: ``intake.receive`` for each of several mails, in one transaction.

The IMAP poll fetches many mails at once; storing each in a transaction of its own costs a
commit, a session and a dozen statements apiece. ``receive_many`` stores them together in
the caller's transaction, with the outcome ``receive`` would have given each in turn:

- Mails are taken in *waves*: a wave never holds two mails with one Message-ID, a mail that
  answers another mail of the wave, two mails for the same ticket, or a mail naming a ticket
  number the desk does not know yet (it may be one the wave opens). The next wave starts
  there, after the one before it is written, so threading and the duplicate check see it.
- In a wave, the duplicate check and thread lookups are one query, the senders one query
  (new customers one statement each for rows, identities and events), mail from the
  customer goes through ``tickets.bulk`` (a new ticket, or a reply on an open ticket, plain
  text or HTML), anything else (a stranger's or a follow-up's linked ticket) through
  ``intake.store`` as alone; the ``inbound_mails`` rows, threads and ``mail.*`` events are
  one statement each.
- The whole batch runs under one savepoint. If anything in it fails (a mail the database
  refuses, a Message-ID another process stored meanwhile), the savepoint is rolled back and
  the mails are taken one at a time, each under its own savepoint: a bad mail never loses or
  blocks the others, and comes back as ``failed`` (not stored; its sender or mailbox retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email import intake
from servicecycle.channels.email.intake import MAILER, Entry, Outcome
from servicecycle.channels.email.parse import ParsedMail
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.tickets import bulk
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.storage import Storage

log = structlog.get_logger(__name__)

FAILED = "failed"  # an outcome of receive_many only: not stored, to be tried again


@dataclass(frozen=True)
class _Mail:
    index: int  # its place in the batch
    mail: ParsedMail
    size: int
    arrived: datetime


async def receive_many(
    session: AsyncSession,
    raws: list[bytes],
    *,
    storage: Storage,
    max_file_bytes: int,
    mailbox_id: int | None = None,
) -> list[Outcome]:
    """``intake.receive`` for each mail of ``raws``, in order, in the caller's transaction;
    an outcome per mail, ``failed`` (with the error as its reason) for one not stored."""
    if len(raws) > 1:
        try:
            async with session.begin_nested():
                return await _together(session, raws, storage, max_file_bytes, mailbox_id)
        except Exception as exc:  # rolled back whole: take them one at a time
            log.warning("mail.batch_fell_back", mails=len(raws), error=str(exc)[:300])
            tickets.forget_rolled_back(session)
    return [await _alone(session, raw, storage, max_file_bytes, mailbox_id) for raw in raws]


async def _alone(
    session: AsyncSession,
    raw: bytes,
    storage: Storage,
    max_file_bytes: int,
    mailbox_id: int | None,
) -> Outcome:
    try:
        async with session.begin_nested():
            return await intake.receive(
                session, raw, storage=storage, max_file_bytes=max_file_bytes, mailbox_id=mailbox_id
            )
    except Exception as exc:  # rolled back alone; the others go on
        log.warning("mail.store_failed", size=len(raw), error=str(exc)[:300])
        tickets.forget_rolled_back(session)
        return Outcome(FAILED, None, f"{type(exc).__name__}: {str(exc)[:500]}")


async def _together(
    session: AsyncSession,
    raws: list[bytes],
    storage: Storage,
    max_file_bytes: int,
    mailbox_id: int | None,
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(raws)
    refused: list[tuple[int, Entry]] = []
    pending: list[_Mail] = []
    for index, raw in enumerate(raws):
        arrived = clock.now()
        read = intake.read(raw, at=arrived, mailbox_id=mailbox_id)
        if isinstance(read, Entry):
            refused.append((index, read))
        else:
            pending.append(_Mail(index, read, len(raw), arrived))
    for (index, _), outcome in zip(
        refused, await intake.log_many(session, [e for _, e in refused]), strict=True
    ):
        outcomes[index] = outcome
    while pending:
        wave, pending = _wave(pending)
        taken = await _take_wave(session, wave, storage, max_file_bytes, mailbox_id)
        for index, outcome in taken.items():
            outcomes[index] = outcome
        pending = [m for m in wave if m.index not in taken] + pending
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(raws)
    return done


def _wave(mails: list[_Mail]) -> tuple[list[_Mail], list[_Mail]]:
    """The longest run of mails from the first on that neither repeat nor answer each other."""
    ids: set[str] = set()
    for position, item in enumerate(mails):
        mail = item.mail
        if position and (mail.message_id in ids or any(i in ids for i in mail.thread_ids)):
            return mails[:position], mails[position:]
        if mail.message_id:
            ids.add(mail.message_id)
    return mails, []


async def _take_wave(
    session: AsyncSession,
    wave: list[_Mail],
    storage: Storage,
    max_file_bytes: int,
    mailbox_id: int | None,
) -> dict[int, Outcome]:
    """Store the wave's mails from the first up to any that must wait for the others (a
    second mail for one ticket, an unknown ticket number); their outcomes by index."""
    found = await intake.lookup(session, [m.mail for m in wave])
    outcomes: dict[int, Outcome] = {}
    targets: dict[int, Ticket | None] = {}
    aimed: set[int] = set()
    for position, item in enumerate(wave):
        mail = item.mail
        if mail.message_id in found.seen:
            outcomes[item.index] = intake.duplicate(found.seen[mail.message_id])
            continue
        ticket = await intake.thread_of(session, mail, found.threads)
        unknown_number = ticket is None and mail.ticket_hint() is not None
        if position and ((ticket is not None and ticket.id in aimed) or unknown_number):
            wave = wave[:position]
            break
        if ticket is not None:
            aimed.add(ticket.id)
        targets[item.index] = ticket
    wave = [m for m in wave if m.index in targets]
    if not wave:
        return outcomes
    people = await customers.find_many_by_email(session, [m.mail.sender for m in wave])
    news: list[_Mail] = []
    replies: list[tuple[_Mail, Ticket, Customer]] = []
    alone: list[_Mail] = []
    unknown: list[tuple[str, str]] = []  # senders the desk does not know yet: new customers
    entries: dict[int, Entry] = {}
    for item in wave:
        mail, ticket = item.mail, targets[item.index]
        customer = people.get(mail.sender)
        if ticket is not None and not await intake.participant(
            session, ticket, mail.sender, customer
        ):
            alone.append(item)  # a stranger: ignored, or a new ticket linked to that one
            if mail.automatic is not None:
                continue  # ignored: a robot is no customer
        elif ticket is None and mail.automatic is not None:
            entries[item.index] = _entry(item, "ignored", mailbox_id, reason=mail.automatic)
            continue  # a robot is no customer
        elif ticket is None:
            news.append(item)
        elif ticket.status != "closed" and customer is not None:
            replies.append((item, ticket, customer))
        else:
            alone.append(item)  # a follow-up of a closed ticket
        if mail.sender not in people:  # each mail from here on is kept as the sender's
            unknown.append((mail.sender, mail.sender_name))
    if unknown:
        people |= await customers.create_many_by_email(session, unknown, actor=MAILER)
    if news:
        opened = await bulk.create_tickets(
            session,
            [
                bulk.NewTicket(
                    subject=m.mail.subject,
                    requester=people[m.mail.sender],
                    channel="email",
                    body_text=_text(m.mail),
                    body_html=m.mail.html,
                    at=m.arrived,
                    actor=Actor("customer", str(people[m.mail.sender].id)),
                )
                for m in news
            ],
        )
        for item, (new, first) in zip(news, opened, strict=True):
            entries[item.index] = _entry(item, "ticket", mailbox_id, ticket=new, message=first.id)
    if replies:
        added = await bulk.add_messages(
            session,
            [
                bulk.NewMessage(
                    ticket=ticket,
                    public=True,
                    author_type="customer",
                    body_text=_text(m.mail),
                    body_html=m.mail.html,
                    channel="email",
                    at=m.arrived,
                    actor=Actor("customer", str(customer.id)),
                    author_customer_id=customer.id,
                )
                for m, ticket, customer in replies
            ],
        )
        for (item, ticket, _), message in zip(replies, added, strict=True):
            entries[item.index] = _entry(
                item, "reply", mailbox_id, ticket=ticket, message=message.id
            )
    for item in alone:
        entries[item.index] = await intake.store(
            session,
            item.mail,
            ticket=targets[item.index],
            known=people.get(item.mail.sender),
            size=item.size,
            at=item.arrived,
            mailbox_id=mailbox_id,
            storage=storage,
            max_file_bytes=max_file_bytes,
        )
    for item in [*news, *(m for m, _, _ in replies)]:
        if item.mail.attachments:
            message_id = entries[item.index].message_id
            assert message_id is not None
            await intake.files(session, item.mail, message_id, storage, max_file_bytes)
    order = sorted(entries)
    logged = await intake.log_many(session, [entries[i] for i in order])
    outcomes.update(zip(order, logged, strict=True))
    return outcomes


def _text(mail: ParsedMail) -> str | None:
    """The plain body the one-mail intake stores: none beside HTML (the text is made from
    it), and a placeholder for a mail with no body at all."""
    text = mail.text if mail.html is None else None
    return text or (None if mail.html else "(empty message)")


def _entry(
    item: _Mail,
    outcome: str,
    mailbox_id: int | None,
    *,
    reason: str | None = None,
    ticket: Ticket | None = None,
    message: int | None = None,
) -> Entry:
    return Entry(
        item.mail,
        outcome,
        item.size,
        item.arrived,
        mailbox_id,
        reason=reason,
        ticket=ticket,
        message_id=message,
    )
