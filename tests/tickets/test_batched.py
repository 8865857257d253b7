"""The batched path (``tickets.bulk``) makes the rows and events the single services make:
the same story, ticket by ticket, with every subscriber's effect (SLA clocks, the
acknowledgement and reply mail, survey invitations, webhook deliveries, rule actions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.automation import service as automation
from servicecycle.channels.models import OutboundMail
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, ValidationFailed
from servicecycle.kit.secrets import Keyring
from servicecycle.sla import batch as sla_batch
from servicecycle.sla import service as sla
from servicecycle.sla.models import SlaClock
from servicecycle.surveys import service as surveys
from servicecycle.surveys.models import SurveyInvitation
from servicecycle.tickets import bulk
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket
from servicecycle.webhooks import service as webhooks
from servicecycle.webhooks.models import WebhookDelivery

ADMIN = Actor.system("test")
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday
CHANNELS = ("email", "web", "chat")


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    yield
    clock.set_source(None)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def move(moment: datetime) -> None:
    clock.set_source(lambda: moment)


async def _desk(db: AsyncSession, make_user: Callable[..., Awaitable[Any]]) -> tuple[Any, Any]:
    """An SLA policy with every target, a CSAT survey, a webhook and a tagging rule."""
    move(at(-60))
    agent = await make_user("agent")
    team = await auth.create_team(db, name="Support", description="", actor=ADMIN)
    await sla.create_policy(
        db,
        name="Standard",
        conditions={},
        targets={
            "first_reply": {"minutes": 60, "business": False},
            "next_reply": {"minutes": 120, "business": False},
            "periodic_update": {"minutes": 240, "business": False},
            "resolution": {"minutes": 600, "business": False},
        },
        calendar_id=None,
        pause_statuses=["pending"],
        warn_minutes=10,
        actor=ADMIN,
    )
    survey = await surveys.create_survey(db, name="CSAT", kind="csat", enabled=True, actor=ADMIN)
    await surveys.create_rule(db, survey, delay_hours=1, channels=[], throttle_days=0, actor=ADMIN)
    await webhooks.create_subscription(
        db,
        name="all of it",
        url="https://hooks.example.com/in",
        kinds=["ticket.*", "message.added", "status.changed", "sla.*", "mail.queued"],
        sending=webhooks.Sending(keyring=Keyring(b"w" * 32)),
        actor=ADMIN,
    )
    await automation.create_rule(
        db,
        name="Tag new",
        kind="trigger",
        events=["ticket.created"],
        conditions=[],
        actions=[{"type": "add_tags", "value": ["seen"]}],
        actor=ADMIN,
    )
    return agent, team


STEPS: list[tuple[float, str]] = [
    (5, "assign"),
    (10, "note"),
    (20, "reply"),  # the first reply: open
    (30, "pending"),
    (60, "reply"),  # a reply while pending: the periodic update starts paused
    (180, "customer"),  # the customer answers: open again, the next reply is owed
    (240, "reply"),
    (241, "solved"),
]


async def _single(db: AsyncSession, customer: Any, channel: str, agent: Any, team: Any) -> int:
    move(at(0))
    ticket, _ = await tickets.create_ticket(
        db,
        subject=f"Lamp broken ({channel})",
        requester=customer,
        channel=channel,
        body_text="It flickers.",
        type="product",
        tags=["lamp"],
        actor=Actor("customer", str(customer.id)),
    )
    by = Actor.user(agent.id)
    for minutes, what in STEPS:
        move(at(minutes))
        if what == "assign":
            await tickets.assign(db, ticket, assignee_id=agent.id, team_id=team.id, actor=by)
        elif what in ("note", "reply"):
            await tickets.add_message(
                db,
                ticket,
                public=what == "reply",
                author_type="agent",
                author_user_id=agent.id,
                body_text=f"{what} at {minutes}",
                actor=by,
            )
        elif what == "customer":
            await tickets.add_message(
                db,
                ticket,
                public=True,
                author_type="customer",
                author_customer_id=customer.id,
                body_text="Still flickers.",
                actor=Actor("customer", str(customer.id)),
            )
        else:
            await tickets.set_status(db, ticket, what, actor=by)
    return ticket.id


async def _batched(
    db: AsyncSession, people: list[tuple[Any, str]], agent: Any, team: Any
) -> list[int]:
    move(at(0))
    made = await bulk.create_tickets(
        db,
        [
            bulk.NewTicket(
                subject=f"Lamp broken ({channel})",
                requester=customer,
                channel=channel,
                body_text="It flickers.",
                type="product",
                tags=("lamp",),
                at=at(0),
                actor=Actor("customer", str(customer.id)),
            )
            for customer, channel in people
        ],
    )
    opened = [ticket for ticket, _ in made]
    by = Actor.user(agent.id)
    for minutes, what in STEPS:
        moment = at(minutes)
        move(moment)
        if what == "assign":
            await bulk.assign_many(
                db, [bulk.NewAssignment(t, agent.id, team.id, moment, by) for t in opened]
            )
        elif what in ("note", "reply"):
            await bulk.add_messages(
                db,
                [
                    bulk.NewMessage(
                        ticket=t,
                        public=what == "reply",
                        author_type="agent",
                        author_user_id=agent.id,
                        body_text=f"{what} at {minutes}",
                        at=moment,
                        actor=by,
                    )
                    for t in opened
                ],
            )
        elif what == "customer":
            await bulk.add_messages(
                db,
                [
                    bulk.NewMessage(
                        ticket=t,
                        public=True,
                        author_type="customer",
                        author_customer_id=customer.id,
                        body_text="Still flickers.",
                        at=moment,
                        actor=Actor("customer", str(customer.id)),
                    )
                    for t, (customer, _) in zip(opened, people, strict=True)
                ],
            )
        else:
            await bulk.set_statuses(db, [bulk.NewStatus(t, what, moment, by) for t in opened])
    return [t.id for t in opened]


IDS = {"message_id", "outbound_id", "clock_id", "invitation_id", "requester_id", "to", "id"}


def _plain(value: Any, ticket_id: int, customer_id: int) -> Any:
    """``value`` without the ids that differ between two equal stories."""
    if isinstance(value, dict):
        return {
            k: _plain(v, ticket_id, customer_id)
            for k, v in value.items()
            if k not in IDS and not (k == "subject" and isinstance(v, dict))
        }
    if isinstance(value, list):
        return [_plain(v, ticket_id, customer_id) for v in value]
    if isinstance(value, str):
        return value.replace(f"#{ticket_id}", "#T").replace(f"t{ticket_id}@", "tT@")
    return value


async def _story(db: AsyncSession, ticket_id: int) -> dict[str, Any]:
    ticket = await db.get(Ticket, ticket_id)
    assert ticket is not None
    await db.refresh(ticket)
    who = ticket.requester_id
    events = (
        await db.scalars(
            select(Event)
            .where(Event.subject_type == "ticket", Event.subject_id == str(ticket_id))
            .order_by(Event.id)
        )
    ).all()
    clocks = (
        await db.scalars(
            select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.id)
        )
    ).all()
    mails = (
        await db.scalars(
            select(OutboundMail)
            .where(OutboundMail.ticket_id == ticket_id)
            .order_by(OutboundMail.id)
        )
    ).all()
    invitations = (
        await db.scalars(select(SurveyInvitation).where(SurveyInvitation.ticket_id == ticket_id))
    ).all()
    deliveries = (
        await db.scalars(
            select(WebhookDelivery)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(Event.subject_id == str(ticket_id), Event.subject_type == "ticket")
            .order_by(WebhookDelivery.event_id)
        )
    ).all()
    messages = (
        await db.scalars(select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id))
    ).all()
    return _plain(
        {
            "ticket": [
                ticket.status,
                ticket.tags,
                ticket.created_at,
                ticket.updated_at,
                ticket.first_reply_at,
                ticket.solved_at,
                ticket.assignee_id,
                ticket.team_id,
            ],
            "messages": [
                [m.public, m.author_type, m.author_user_id, m.channel, m.body_text, m.created_at]
                for m in messages
            ],
            "events": [
                [
                    e.kind,
                    e.actor_type,
                    "C" if e.actor_type == "customer" else e.actor_id,
                    e.occurred_at,
                    e.data,
                ]
                for e in events
            ],
            "clocks": [
                [
                    c.metric,
                    c.state,
                    c.started_at,
                    c.due_at,
                    c.warn_at,
                    c.stopped_at,
                    round(c.used_minutes, 3),
                    c.running_since,
                ]
                for c in clocks
            ],
            "mails": [
                [m.kind, m.subject, m.body_text, m.status, m.created_at, m.next_attempt_at]
                for m in mails
            ],
            "invitations": [
                [i.status, i.due_at, i.solved_at, i.agent_id, i.channel] for i in invitations
            ],
            "deliveries": [[d.kind, d.status, d.next_attempt_at, d.payload] for d in deliveries],
        },
        ticket_id,
        who,
    )


async def test_batches_make_the_same_story_as_the_single_services_ticket_by_ticket(
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Any]],
    make_customer: Callable[..., Awaitable[Any]],
) -> None:
    agent, team = await _desk(db, make_user)
    singles = [(await make_customer(tier="standard"), channel) for channel in CHANNELS]
    batched = [(await make_customer(tier="standard"), channel) for channel in CHANNELS]
    one_by_one = [await _single(db, c, channel, agent, team) for c, channel in singles]
    together = await _batched(db, batched, agent, team)
    for single_id, batch_id in zip(one_by_one, together, strict=True):
        single, batch = await _story(db, single_id), await _story(db, batch_id)
        for part in single:
            assert batch[part] == single[part], part
    # the story has every effect in it
    story = await _story(db, together[0])
    kinds = [e[0] for e in story["events"]]
    for kind in ("mail.queued", "sla.policy_applied", "sla.met", "survey.scheduled"):
        assert kind in kinds
    assert "seen" in story["ticket"][1]  # the rule's action
    assert story["deliveries"] and story["invitations"]
    assert [m[0] for m in story["mails"]] == ["acknowledgement", "reply", "reply", "reply"]


async def test_a_bad_item_writes_nothing_and_is_named(
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Any]],
    make_customer: Callable[..., Awaitable[Any]],
) -> None:
    agent, team = await _desk(db, make_user)
    customer = await make_customer()
    move(at(0))
    before = await db.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    good = bulk.NewTicket("Lamp", customer, "email", "It flickers.", at(0), ADMIN)
    with pytest.raises(ValidationFailed) as refused:
        await bulk.create_tickets(
            db, [good, bulk.NewTicket("Shelf", customer, "fax", "x", at(0), ADMIN)]
        )
    assert refused.value.message.startswith("Item 1 (ticket 'Shelf'): Invalid channel")
    assert refused.value.extra["item"] == 1
    assert await db.scalar(select(Ticket.id).where(Ticket.subject == "Lamp")) is None
    assert await db.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == before

    [(ticket, _)] = await bulk.create_tickets(db, [good])
    [(other, _)] = await bulk.create_tickets(
        db, [bulk.NewTicket("Shelf", customer, "web", "Wobbles.", at(0), ADMIN)]
    )
    move(at(5))
    await bulk.set_statuses(db, [bulk.NewStatus(other, "solved", at(5), ADMIN)])
    await bulk.set_statuses(db, [bulk.NewStatus(other, "closed", at(6), ADMIN)])
    before = await db.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    messages = await db.scalar(select(Message.id).order_by(Message.id.desc()).limit(1))
    with pytest.raises(Conflict) as closed:
        await bulk.add_messages(
            db,
            [
                bulk.NewMessage(
                    ticket, True, "agent", "Fine", at(7), ADMIN, author_user_id=agent.id
                ),
                bulk.NewMessage(
                    other, True, "agent", "Late", at(7), ADMIN, author_user_id=agent.id
                ),
            ],
        )
    assert closed.value.message.startswith(f"Item 1 (ticket {other.id}): This ticket is closed")
    with pytest.raises(Conflict) as moved:
        await bulk.set_statuses(
            db,
            [
                bulk.NewStatus(ticket, "pending", at(7), ADMIN),
                bulk.NewStatus(other, "open", at(7), ADMIN),
            ],
        )
    assert moved.value.message.startswith(f"Item 1 (ticket {other.id}): A closed ticket")
    with pytest.raises(ValidationFailed) as twice:
        await bulk.assign_many(
            db,
            [
                bulk.NewAssignment(ticket, agent.id, team.id, at(7), ADMIN),
                bulk.NewAssignment(ticket, None, team.id, at(7), ADMIN),
            ],
        )
    assert "Item 1" in twice.value.message
    with pytest.raises(ValidationFailed) as nobody:
        await bulk.assign_many(db, [bulk.NewAssignment(ticket, 999_999, None, at(7), ADMIN)])
    assert nobody.value.message.startswith(f"Item 0 (ticket {ticket.id}): No such agent")
    assert await db.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == before
    assert await db.scalar(select(Message.id).order_by(Message.id.desc()).limit(1)) == messages
    await db.refresh(ticket)
    assert (ticket.status, ticket.assignee_id) == ("new", None)


async def test_the_history_sweep_breaches_at_the_due_time_and_warns_at_the_warning(
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Any]],
    make_customer: Callable[..., Awaitable[Any]],
) -> None:
    await _desk(db, make_user)
    customer = await make_customer()
    move(at(0))
    [(late, _), (soon, _)] = await bulk.create_tickets(
        db,
        [
            bulk.NewTicket("Late", customer, "phone", "Hello", at(0), ADMIN),
            bulk.NewTicket("Soon", customer, "phone", "Hello", at(0), ADMIN),
        ],
    )
    # first replies are due at 60 minutes, warned 10 minutes before
    warned, breached = await sla_batch.sweep_history(db, moments={late.id: at(90), soon.id: at(55)})
    assert (warned, breached) == (2, 1)  # the late clock was warned before it was due
    rows = {
        (c.ticket_id, c.metric): c
        for c in (await db.scalars(select(SlaClock))).all()
        if c.ticket_id in (late.id, soon.id)
    }
    assert rows[(late.id, "first_reply")].state == "breached"
    assert rows[(late.id, "first_reply")].breached_at == at(60)
    assert rows[(soon.id, "first_reply")].warned_at == at(50)
    events = (
        await db.scalars(
            select(Event).where(Event.kind.in_(("sla.breached", "sla.warning"))).order_by(Event.id)
        )
    ).all()
    assert [(e.kind, e.subject_id, e.occurred_at) for e in events] == [
        ("sla.warning", str(late.id), at(50)),
        ("sla.warning", str(soon.id), at(50)),
        ("sla.breached", str(late.id), at(60)),
    ]
    # a reply after the due time meets the breached clock: it stays breached
    await bulk.add_messages(db, [bulk.NewMessage(late, True, "agent", "Sorry", at(90), ADMIN)])
    await db.refresh(rows[(late.id, "first_reply")])
    assert rows[(late.id, "first_reply")].state == "breached"
    assert rows[(late.id, "first_reply")].stopped_at == at(90)
    # swept once: nothing more to do
    assert await sla_batch.sweep_history(db, moments={late.id: at(90), soon.id: at(55)}) == (0, 0)


async def test_a_ticket_changed_behind_the_batch_is_refused(
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Any]],
    make_customer: Callable[..., Awaitable[Any]],
) -> None:
    await _desk(db, make_user)
    customer = await make_customer()
    move(at(0))
    [(one, _), (two, _)] = await bulk.create_tickets(
        db,
        [
            bulk.NewTicket("One", customer, "phone", "Hello", at(0), ADMIN),
            bulk.NewTicket("Two", customer, "phone", "Hello", at(0), ADMIN),
        ],
    )
    # another writer moves ticket two on (behind the ORM): its version is not the one loaded
    await db.execute(
        text("UPDATE tickets SET version = version + 1 WHERE id = :id"), {"id": two.id}
    )
    with pytest.raises(Conflict):
        await bulk.set_statuses(
            db,
            [bulk.NewStatus(one, "open", at(5), ADMIN), bulk.NewStatus(two, "open", at(5), ADMIN)],
        )


async def test_replies_are_mailed_to_each_requesters_first_address_and_none_without(
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Any]],
) -> None:
    from servicecycle.customers import service as customers

    agent, _ = await _desk(db, make_user)
    move(at(0))
    who = [
        await customers.create_customer(
            db, name="Phone only", phones=["+441234567890"], actor=ADMIN
        ),
        await customers.create_customer(
            db, name="Two", emails=["first@example.com", "second@example.com"], actor=ADMIN
        ),
    ]
    made = await bulk.create_tickets(
        db, [bulk.NewTicket(f"T{c.id}", c, "email", "Hi", at(0), ADMIN) for c in who]
    )
    await bulk.add_messages(
        db,
        [
            bulk.NewMessage(t, True, "agent", "Hello", at(5), ADMIN, author_user_id=agent.id)
            for t, _ in made
        ],
    )
    mails = {
        t.id: [
            (m.kind, m.to_address)
            for m in await db.scalars(
                select(OutboundMail).where(OutboundMail.ticket_id == t.id).order_by(OutboundMail.id)
            )
        ]
        for t, _ in made
    }
    [(nobody, _), (two, _)] = made
    assert mails[nobody.id] == []
    assert mails[two.id] == [
        ("acknowledgement", "first@example.com"),
        ("reply", "first@example.com"),
    ]
    queued = await db.scalars(
        select(Event.subject_id).where(Event.kind == "mail.queued").order_by(Event.id)
    )
    assert list(queued) == [str(two.id), str(two.id)]
