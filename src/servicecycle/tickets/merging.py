"""Merge, split, link and follow tickets. Flushes; the caller commits."""

from __future__ import annotations

import html

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, ValidationFailed
from servicecycle.tickets.models import Message, Ticket, TicketFollower, TicketLink
from servicecycle.tickets.service import clean_subject, set_status, touch


async def merge(session: AsyncSession, source: Ticket, target: Ticket, *, actor: Actor) -> Ticket:
    """Move every message of ``source`` into ``target`` and close ``source``, which then
    points (and redirects) to ``target``."""
    if source.id == target.id:
        raise ValidationFailed(
            "A ticket cannot be merged into itself", fields={"into_id": "same ticket"}
        )
    if target.status == "closed" or target.merged_into_id is not None:
        raise Conflict(
            "Tickets cannot be merged into a closed ticket", fields={"into_id": "closed or merged"}
        )
    if source.status == "closed" or source.merged_into_id is not None:
        raise Conflict("This ticket is closed or already merged", fields={"id": "closed"})
    moved = list(
        (
            await session.execute(
                update(Message)
                .where(Message.ticket_id == source.id)
                .values(ticket_id=target.id)
                .returning(Message.id)
            )
        ).scalars()
    )
    now = clock.now()
    for ticket, text in (
        (target, f"Ticket #{source.id} “{source.subject}” was merged into this ticket."),
        (source, f"Merged into ticket #{target.id}."),
    ):
        session.add(
            Message(
                ticket_id=ticket.id,
                public=False,
                author_type="system",
                channel=ticket.channel,
                body_html=f"<p>{html.escape(text)}</p>",
                body_text=text,
                created_at=now,
            )
        )
    target.tags = sorted(set(target.tags) | set(source.tags))
    if source.status != "solved":
        await set_status(session, source, "solved", actor=actor, check_fields=False)
    await set_status(session, source, "closed", actor=actor)
    source.merged_into_id = target.id
    touch(session, source)
    touch(session, target)
    await session.flush()
    await record(
        session,
        "ticket.merged",
        subject_type="ticket",
        subject_id=source.id,
        actor=actor,
        data={"into": target.id, "message_ids": moved},
    )
    await record(
        session,
        "ticket.absorbed",
        subject_type="ticket",
        subject_id=target.id,
        actor=actor,
        data={"from": source.id, "message_ids": moved},
    )
    return target


async def split(
    session: AsyncSession, ticket: Ticket, *, message_ids: list[int], subject: str, actor: Actor
) -> Ticket:
    """Move some messages into a new ticket for the same requester, linked to this one."""
    if ticket.status == "closed":
        raise Conflict("A closed ticket cannot be split", fields={"status": "closed is final"})
    subject = clean_subject(subject)
    own = list(
        (
            await session.scalars(
                select(Message.id).where(Message.ticket_id == ticket.id).order_by(Message.id)
            )
        ).all()
    )
    wanted = list(dict.fromkeys(message_ids))
    if not wanted or any(m not in own for m in wanted):
        raise ValidationFailed(
            "Choose messages of this ticket", fields={"message_ids": "not on this ticket"}
        )
    if len(wanted) == len(own):
        raise ValidationFailed(
            "Leave at least one message behind", fields={"message_ids": "all of them"}
        )
    now = clock.now()
    new = Ticket(
        subject=subject,
        status="open",
        priority=ticket.priority,
        type=ticket.type,
        channel=ticket.channel,
        requester_id=ticket.requester_id,
        assignee_id=ticket.assignee_id,
        team_id=ticket.team_id,
        tags=list(ticket.tags),
        created_at=now,
        updated_at=now,
    )
    session.add(new)
    await session.flush()
    await session.execute(update(Message).where(Message.id.in_(wanted)).values(ticket_id=new.id))
    session.add(TicketLink(ticket_id=ticket.id, linked_id=new.id, kind="split_from"))
    await session.flush()
    await record(
        session,
        "ticket.created",
        subject_type="ticket",
        subject_id=new.id,
        actor=actor,
        occurred_at=now,
        data={
            "subject": subject,
            "channel": new.channel,
            "priority": new.priority,
            "requester_id": new.requester_id,
            "split_from": ticket.id,
            "message_ids": wanted,
        },
    )
    await record(
        session,
        "ticket.split",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={"into": new.id, "message_ids": wanted},
    )
    return new


async def link(session: AsyncSession, ticket: Ticket, other: Ticket, *, actor: Actor) -> None:
    if ticket.id == other.id:
        raise ValidationFailed(
            "A ticket cannot be linked to itself", fields={"linked_id": "same ticket"}
        )
    low, high = sorted((ticket.id, other.id))
    if await session.get(TicketLink, (low, high)) is None:
        session.add(TicketLink(ticket_id=low, linked_id=high, kind="related"))
        await session.flush()
        await record(
            session,
            "ticket.linked",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=actor,
            data={"linked_id": other.id},
        )


async def links_of(session: AsyncSession, ticket: Ticket) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(TicketLink.ticket_id, TicketLink.linked_id, TicketLink.kind).where(
            or_(TicketLink.ticket_id == ticket.id, TicketLink.linked_id == ticket.id)
        )
    )
    return sorted((b if a == ticket.id else a, kind) for a, b, kind in rows)


async def follow(session: AsyncSession, ticket: Ticket, user_id: int, *, actor: Actor) -> None:
    user = await auth.get_user(session, user_id)
    if await session.get(TicketFollower, (ticket.id, user.id)) is None:
        session.add(TicketFollower(ticket_id=ticket.id, user_id=user.id))
        await session.flush()
        await record(
            session,
            "ticket.followed",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=actor,
            data={"user_id": user.id},
        )


async def unfollow(session: AsyncSession, ticket: Ticket, user_id: int, *, actor: Actor) -> None:
    result = await session.execute(
        delete(TicketFollower).where(
            TicketFollower.ticket_id == ticket.id, TicketFollower.user_id == user_id
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"User {user_id} does not follow ticket {ticket.id}")
    await record(
        session,
        "ticket.unfollowed",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={"user_id": user_id},
    )


async def followers_of(session: AsyncSession, ticket: Ticket) -> list[int]:
    rows = await session.scalars(
        select(TicketFollower.user_id)
        .where(TicketFollower.ticket_id == ticket.id)
        .order_by(TicketFollower.user_id)
    )
    return list(rows.all())
