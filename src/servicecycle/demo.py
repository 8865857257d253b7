"""A small hand-made seed for the demo (until the simulated business replaces it).

Everything goes through the services, so the demo's event log is as real as a user's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Team, User
from servicecycle.automation import macros
from servicecycle.automation import service as automation
from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.sla import service as sla
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

DEMO_PASSWORD = "servicecycle-demo"  # noqa: S105 - published demo credentials
DEMO_LOGINS = [
    ("admin", "admin@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ana@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ben@demo.servicecycle.test", DEMO_PASSWORD),
    ("analyst", "ola@demo.servicecycle.test", DEMO_PASSWORD),
]
_NAMES = {
    "admin@demo.servicecycle.test": "Alex Admin",
    "ana@demo.servicecycle.test": "Ana Lima",
    "ben@demo.servicecycle.test": "Ben Okafor",
    "ola@demo.servicecycle.test": "Ola Nordmann",
}
_TEAMS = {
    "Support": ("First line: orders, delivery, accounts", ["ana@demo.servicecycle.test"]),
    "Billing": ("Invoices, refunds and payments", ["ben@demo.servicecycle.test"]),
}


async def load(url: str) -> int:
    """Add the demo users and teams that are missing; returns how many records were added."""
    engine = make_engine(url, pool_size=1)
    actor = Actor.system("demo")
    created = 0
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            users = {}
            for role, email, password in DEMO_LOGINS:
                user = await auth.find_user_by_email(session, email)
                if user is None:
                    user = await auth.create_user(
                        session,
                        email=email,
                        name=_NAMES[email],
                        role=role,
                        password=password,
                        actor=actor,
                    )
                    created += 1
                users[email] = user
            for name, (description, members) in _TEAMS.items():
                team = await session.scalar(select(Team).where(Team.name == name))
                if team is None:
                    team = await auth.create_team(
                        session, name=name, description=description, actor=actor
                    )
                    created += 1
                for email in members:
                    await auth.add_team_member(session, team, users[email], actor=actor)
            if not await session.scalar(select(func.count()).select_from(Ticket)):
                created += await _standards(session, users)
                created += await _tickets(session, users)
    finally:
        await engine.dispose()
    return created


@dataclass(frozen=True)
class Story:
    """One demo ticket: who asks, what, and what the desk has done so far."""

    customer: str
    subject: str
    body: str
    channel: str = "email"
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    team: str | None = "Support"
    agent: str | None = None
    reply: str | None = None
    note: str | None = None
    status: str | None = None
    answer: str | None = None


CUSTOMERS = {
    "Priya Raman": ("priya.raman@example.com", "premium"),
    "Tom Becker": ("tom.becker@example.org", "standard"),
    "Lucía Fernández": ("lucia.fernandez@example.es", "standard"),
    "Kwame Mensah": ("kwame@mensah-design.example", "vip"),
    "Hannah Schulz": ("h.schulz@example.de", "standard"),
    "Oliver Grant": ("oliver.grant@example.co.uk", "premium"),
}

STORIES = [
    Story(
        "Priya Raman",
        "Parcel marked delivered but not here",
        "Hi, order #48213 says delivered yesterday at 14:02 but nothing arrived. "
        "Neighbours don't have it either. Can you check with the courier?",
        priority="high",
        tags=("delivery",),
    ),
    Story(
        "Tom Becker",
        "Charged twice for the same order",
        "My card statement shows two charges of 59.90 for order #48177. Please refund one.",
        tags=("billing", "refund"),
        team="Billing",
        agent="ben@demo.servicecycle.test",
        note="Both captures are in the PSP; the second one is a duplicate retry.",
        reply="Sorry about that, Tom. I have refunded the duplicate charge; it will be back "
        "on your card in 3-5 working days.",
        status="solved",
    ),
    Story(
        "Lucía Fernández",
        "Can I change the size after ordering?",
        "I ordered the linen shirt in M (#48230) but I need an L. It has not shipped yet.",
        channel="web",
        agent="ana@demo.servicecycle.test",
        reply="Hi Lucía, I have changed the order to size L. It ships tomorrow.",
        status="pending",
    ),
    Story(
        "Kwame Mensah",
        "Invoice needs our VAT number",
        "Please reissue invoice INV-2026-0931 with our VAT number GB 123 4567 89.",
        priority="high",
        tags=("billing", "invoice"),
        team="Billing",
    ),
    Story(
        "Hannah Schulz",
        "Return label not working",
        "The return label link in your e-mail gives an error page. I want to return the "
        "kettle from order #48102.",
        channel="web",
        tags=("returns",),
        agent="ana@demo.servicecycle.test",
        reply="Hi Hannah, here is a new label; the old link had expired.",
        status="solved",
        answer="Thanks, the new one works!",
    ),
    Story(
        "Oliver Grant",
        "Discount code rejected at checkout",
        "The code WINTER15 from your newsletter says it is invalid.",
        channel="chat",
        tags=("checkout",),
    ),
    Story(
        "Priya Raman",
        "Question about the warranty on headphones",
        "How long is the warranty on the ANC headphones, and does it cover the battery?",
        channel="web",
        priority="low",
        team=None,
    ),
    Story(
        "Tom Becker",
        "Account locked after password reset",
        "I reset my password and now the site says my account is locked.",
        priority="urgent",
        tags=("account",),
        agent="ana@demo.servicecycle.test",
        note="Locked by the fraud rule after 3 resets in an hour; unlock after ID check.",
        status="on-hold",
    ),
]


async def _standards(session: AsyncSession, users: dict[str, User]) -> int:
    """Business hours, two SLA policies, an escalation rule and a macro, as an admin would."""
    actor = Actor.user(users["admin@demo.servicecycle.test"].id)
    hours = await sla.create_calendar(
        session,
        name="London office",
        zone="Europe/London",
        week={str(day): [["09:00", "17:00"]] for day in range(5)},
        holiday_country="GB",
        holiday_region="ENG",
        closed_days=[],
        actor=actor,
    )
    await sla.create_policy(
        session,
        name="VIP customers",
        conditions={"tier": ["vip", "premium"]},
        targets={
            "first_reply": {"minutes": 60, "business": True},
            "next_reply": {"minutes": 120, "business": True},
            "resolution": {"minutes": 480, "business": True},
        },
        calendar_id=hours.id,
        pause_statuses=["pending", "on-hold"],
        warn_minutes=15,
        actor=actor,
    )
    await sla.create_policy(
        session,
        name="Everyone else",
        conditions={},
        targets={
            "first_reply": {"minutes": 240, "business": True},
            "next_reply": {"minutes": 480, "business": True},
            "resolution": {"minutes": 1440, "business": True},
        },
        calendar_id=hours.id,
        pause_statuses=["pending", "on-hold"],
        warn_minutes=30,
        actor=actor,
    )
    await automation.create_rule(
        session,
        name="Escalate missed first replies",
        kind="trigger",
        events=["sla.breached"],
        conditions=[{"field": "sla.metric", "op": "is", "value": "first_reply"}],
        actions=[
            {"type": "set_priority", "value": "high"},
            {"type": "add_tags", "value": ["escalated"]},
        ],
        actor=actor,
    )
    await automation.create_rule(
        session,
        name="Close solved tickets after 4 days",
        kind="time",
        events=[],
        conditions=[
            {"field": "ticket.status", "op": "is", "value": "solved"},
            {"field": "ticket.hours_since_update", "op": "gte", "value": 96},
        ],
        actions=[{"type": "set_status", "value": "closed"}],
        actor=actor,
    )
    await macros.create_macro(
        session,
        name="Refund sent",
        public=True,
        shared=True,
        is_admin=True,
        owner_id=users["admin@demo.servicecycle.test"].id,
        body="Hi {{customer.first_name}},\n\nI have refunded your payment for ticket "
        "#{{ticket.number}}; it reaches your account in 3-5 working days.\n\n"
        "{{agent.first_name}}",
        actions=[
            {"type": "set_status", "value": "solved"},
            {"type": "add_tags", "value": ["refund"]},
        ],
        actor=actor,
    )
    return 6


async def _tickets(session: AsyncSession, users: dict[str, User]) -> int:
    teams = {team.name: team for team, _ in await auth.list_teams(session)}
    people = {}
    for name, (email, tier) in CUSTOMERS.items():
        people[name] = await customers.find_by_identity(session, "email", email) or (
            await customers.create_customer(
                session, name=name, emails=[email], tier=tier, actor=Actor.system("demo")
            )
        )
    for story in STORIES:
        customer = people[story.customer]
        as_customer = Actor("customer", str(customer.id))
        ticket, _ = await tickets.create_ticket(
            session,
            subject=story.subject,
            requester=customer,
            channel=story.channel,
            body_text=story.body,
            priority=story.priority,
            tags=list(story.tags),
            team_id=teams[story.team].id if story.team else None,
            actor=as_customer,
        )
        agent = users.get(story.agent or "")
        if agent is not None:
            await tickets.assign(
                session,
                ticket,
                assignee_id=agent.id,
                team_id=ticket.team_id,
                actor=Actor.user(agent.id),
            )
            if story.note:
                await tickets.add_message(
                    session,
                    ticket,
                    public=False,
                    author_type="agent",
                    author_user_id=agent.id,
                    body_text=story.note,
                    actor=Actor.user(agent.id),
                )
            if story.reply:
                await tickets.add_message(
                    session,
                    ticket,
                    public=True,
                    author_type="agent",
                    author_user_id=agent.id,
                    body_text=story.reply,
                    status=story.status,
                    actor=Actor.user(agent.id),
                )
            elif story.status:
                await tickets.update_ticket(
                    session,
                    ticket,
                    expected_version=None,
                    changes={"status": story.status},
                    actor=Actor.user(agent.id),
                )
        if story.answer:
            await tickets.add_message(
                session,
                ticket,
                public=True,
                author_type="customer",
                author_customer_id=customer.id,
                body_text=story.answer,
                actor=as_customer,
            )
    return len(CUSTOMERS) + len(STORIES)
