"""``answer_many`` (many customers' clicks on their survey links at once, as the simulated
history replays them) makes what ``resolve_token`` and ``answer`` make one click at a time:
the answers, the ``survey.answered`` events and what the follow-ups do with them (a
recovery for an unhappy answer, a note on the open one for a second unhappy answer or a
happier score). A bad link or score refuses the whole batch, naming the item."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.customers import service as customers
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.followups.models import FollowUp
from servicecycle.kit.errors import ServiceError
from servicecycle.kit.secrets import Keyring
from servicecycle.surveys import service
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import service as tickets
from tests.surveys.conftest import START, Clock

ADMIN = Actor.system("test")
KEYRING = Keyring(b"a" * 32)
MAILER = service.Mailer(keyring=KEYRING, base_url="http://desk.test", sender="help@shop.test")
SENT = START + timedelta(hours=1)
# (ticket, survey kind, score, comment, minutes after the mail): two rounds of clicks
FIRST = [
    (0, "nps", 3, "Far too slow", 10),  # unhappy: a recovery
    (1, "nps", 9, None, 12),  # happy
    (2, "nps", 2, None, 14),  # unhappy: a recovery...
    (3, "nps", 1, "", 16),  # unhappy: a recovery, changed to a happier score below
    (4, "csat", 5, "Thanks", 18),  # answered again with the same score below
    (5, "csat", 4, None, 20),
]
SECOND = [
    (2, "csat", 1, "Still broken", 60),  # ...and a second unhappy answer: a note on it
    (3, "nps", 8, None, 62),  # happier now: a note on its recovery
    (4, "csat", 5, None, 64),  # the same click again: no news
    (5, "csat", 2, None, 66),  # changed to unhappy (CSAT 2): a recovery
    (1, "csat", 5, "Great", 68),
]


async def _world(db: AsyncSession, frozen: Clock, name: str, agent_id: int) -> list[int]:
    """Six solved tickets of six customers, assigned to the agent, their surveys sent."""
    made = []
    for n in range(6):
        frozen.at = START
        customer = await customers.create_customer(
            db, name=f"{name} {n}", emails=[f"{name.lower()}{n}@example.net"], actor=ADMIN
        )
        ticket, _ = await tickets.create_ticket(
            db,
            subject=f"Order {n}",
            requester=customer,
            channel="email",
            body_text="Where is it?",
            actor=Actor("customer", str(customer.id)),
        )
        await tickets.assign(db, ticket, assignee_id=agent_id, team_id=None, actor=ADMIN)
        await tickets.set_status(db, ticket, "solved", actor=ADMIN)
        made.append(ticket.id)
    return made


async def _desk(db: AsyncSession, frozen: Clock) -> tuple[list[int], list[int]]:
    frozen.at = START - timedelta(days=1)
    for kind in ("nps", "csat"):
        survey = await service.create_survey(db, name=kind, kind=kind, enabled=True, actor=ADMIN)
        await service.create_rule(db, survey, delay_hours=1, throttle_days=0, actor=ADMIN)
    agent = await auth.create_user(
        db, email="ada@shop.test", name="Ada Agent", role="agent", password=None, actor=ADMIN
    )
    one, other = (
        await _world(db, frozen, "Single", agent.id),
        await _world(db, frozen, "Many", agent.id),
    )
    frozen.at = SENT
    await service.send_due_invitations(db, MAILER)
    return one, other


async def _token(db: AsyncSession, ticket_id: int, kind: str) -> str:
    invitation = await db.scalar(
        select(SurveyInvitation)
        .join(service.Survey, service.Survey.id == SurveyInvitation.survey_id)
        .where(SurveyInvitation.ticket_id == ticket_id, service.Survey.kind == kind)
    )
    assert invitation is not None and invitation.sent_at is not None
    return service.make_token(KEYRING, invitation, sent=invitation.sent_at)


async def _story(db: AsyncSession, ticket_id: int) -> dict[str, Any]:
    """The ticket's answers, its events since the mail and its follow-ups, without ids."""
    ids = ("response_id", "invitation_id", "customer_id", "follow_up_id", "ticket_id")
    responses = await db.scalars(
        select(SurveyResponse)
        .where(SurveyResponse.ticket_id == ticket_id)
        .order_by(SurveyResponse.kind)
    )
    events = await db.scalars(
        select(Event)
        .where(
            Event.subject_type == "ticket",
            Event.subject_id == str(ticket_id),
            Event.occurred_at > SENT,
        )
        .order_by(Event.id)
    )
    follow_ups = await db.scalars(
        select(FollowUp).where(FollowUp.ticket_id == ticket_id).order_by(FollowUp.id)
    )
    return {
        "responses": [
            (r.kind, r.score, r.comment, r.source, r.answered_at, r.updated_at, r.agent_id)
            for r in responses
        ],
        "events": [
            (
                e.kind,
                e.actor_type,
                e.actor_id if e.actor_type != "customer" else "C",
                e.occurred_at,
                {k: v for k, v in e.data.items() if k not in ids and k != "source"}
                | ({"source": e.data["source"][0]} if e.kind == "follow_up.created" else {}),
            )
            for e in events
        ],
        "follow_ups": [
            (f.kind, f.reason, f.owner_id, f.due_at, f.state, f.created_at, f.source_type)
            for f in follow_ups
        ],
    }


def _at(minutes: int) -> datetime:
    return SENT + timedelta(minutes=minutes)


async def test_answers_in_one_call_make_what_clicks_one_by_one_make(
    db: AsyncSession, frozen: Clock
) -> None:
    one, many = await _desk(db, frozen)
    for round_ in (FIRST, SECOND):
        for n, kind, score, comment, minutes in round_:
            frozen.at = _at(minutes)
            invitation, survey = await service.resolve_token(
                db, KEYRING, await _token(db, one[n], kind)
            )
            await service.answer(db, invitation, survey, score=score, comment=comment)
        frozen.at = _at(max(m for *_, m in round_))  # the call's own time plays no part
        answered = await service.answer_many(
            db,
            KEYRING,
            [
                service.NewAnswer(
                    token=await _token(db, many[n], kind),
                    score=score,
                    at=_at(minutes),
                    comment=comment,
                )
                for n, kind, score, comment, minutes in round_
            ],
        )
        assert [(r.ticket_id, r.kind, r.score) for r in answered] == [
            (many[n], kind, score) for n, kind, score, *_ in round_
        ]
    for single, batched in zip(one, many, strict=True):
        assert await _story(db, batched) == await _story(db, single)
    # what the rounds did: three recoveries, then a note on two of them and a fourth one
    stories = [await _story(db, t) for t in many]
    assert [len(s["follow_ups"]) for s in stories] == [1, 0, 1, 1, 0, 1]
    kinds = [e[0] for s in stories for e in s["events"]]
    assert kinds.count("survey.answered") == 10  # the same click again is no news
    assert kinds.count("follow_up.created") == 4
    notes = [e[4]["note"] for s in stories for e in s["events"] if e[0] == "follow_up.updated"]
    assert sorted(notes) == [
        "Another unhappy answer: CSAT 1",
        "The customer changed their answer to NPS 8 (no longer unhappy)",
    ]


async def test_a_bad_click_refuses_the_batch_naming_it(db: AsyncSession, frozen: Clock) -> None:
    _, many = await _desk(db, frozen)
    good = service.NewAnswer(token=await _token(db, many[0], "nps"), score=7, at=_at(5))
    invitation = await db.scalar(
        select(SurveyInvitation).where(SurveyInvitation.ticket_id == many[1])
    )
    assert invitation is not None
    unknown = SurveyInvitation(id=10**9, customer_id=invitation.customer_id)
    other = SurveyInvitation(id=invitation.id, customer_id=invitation.customer_id + 1000)
    bad = {
        "forged": good.token[:-2] + ("aa" if not good.token.endswith("aa") else "bb"),
        "unknown": service.make_token(KEYRING, unknown, sent=SENT),
        "another customer's": service.make_token(KEYRING, other, sent=SENT),
        "expired": service.make_token(KEYRING, invitation, sent=SENT - timedelta(days=40)),
    }
    events = await db.scalar(select(func.count()).select_from(Event))
    for what, token in bad.items():
        with pytest.raises(ServiceError) as refused:
            await service.answer_many(
                db, KEYRING, [good, service.NewAnswer(token=token, score=5, at=_at(6))]
            )
        assert refused.value.message.startswith("Item 1 ("), what
        assert refused.value.extra["item"] == 1
    off_scale = service.NewAnswer(token=await _token(db, many[2], "csat"), score=9, at=_at(7))
    with pytest.raises(ServiceError) as refused:
        await service.answer_many(db, KEYRING, [good, off_scale])
    assert refused.value.message.startswith("Item 1 (invitation ")
    assert refused.value.fields == {"score": "between 1 and 5"}
    with pytest.raises(ServiceError) as refused:
        await service.answer_many(db, KEYRING, [good, good])
    assert "once per batch" in refused.value.message
    # nothing was written
    assert await db.scalar(select(func.count()).select_from(SurveyResponse)) == 0
    assert await db.scalar(select(func.count()).select_from(Event)) == events
