"""The sender's runs in one call (``send_due_invitations(..., runs=...)``, for replayed
history) do what one call per run does: the same invitations sent or skipped, each at its
own run (its ``sent_at``, its link, its mail's and its events' time), and a customer's
invitation in a later run throttled by one sent in an earlier run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import OutboundMail
from servicecycle.customers import service as customers
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit.secrets import Keyring
from servicecycle.surveys import service
from servicecycle.surveys.models import SurveyInvitation
from servicecycle.tickets import service as tickets
from tests.surveys.conftest import START, Clock

ADMIN = Actor.system("test")
MAILER = service.Mailer(
    keyring=Keyring(b"s" * 32), base_url="http://desk.test", sender="help@shop.test"
)
# the sender's runs: every 15 minutes from an hour after the first solve
RUNS = [START + timedelta(hours=1, minutes=15 * n) for n in range(5)]


async def _desk(db: AsyncSession, frozen: Clock) -> dict[str, int]:
    """Two surveys an hour after solved (NPS throttled for 30 days, CSAT not), and tickets
    solved so that their invitations fall due in different runs: a customer with three
    tickets (the later NPS invitations throttled by the first, two of them in one run), a
    ticket reopened before its run, one solved too late for the last run, and others."""
    nps = await service.create_survey(db, name="NPS", kind="nps", enabled=True, actor=ADMIN)
    await service.create_rule(db, nps, delay_hours=1, throttle_days=30, actor=ADMIN)
    csat = await service.create_survey(db, name="CSAT", kind="csat", enabled=True, actor=ADMIN)
    await service.create_rule(db, csat, delay_hours=1, throttle_days=0, actor=ADMIN)
    people = {
        name: await customers.create_customer(
            db, name=name, emails=[f"{name.lower()}@example.net"], actor=ADMIN
        )
        for name in ("Ann", "Bob", "Cat", "Dan")
    }
    plan = [  # (minutes after START it is solved, customer, reopened before the runs)
        (0, "Ann", False),  # due 10:00: the first run
        (5, "Bob", False),  # due 10:05: the second run (10:15)
        (16, "Ann", False),  # due 10:16: the third run (10:30), throttled
        (20, "Ann", False),  # due 10:20: the third run too, throttled
        (20, "Cat", True),  # reopened: skipped
        (31, "Dan", False),  # the fourth run
        (59, "Bob", False),  # due 10:59: the last run (11:00), throttled
        (61, "Cat", False),  # due after the last run: stays scheduled
    ]
    made: dict[str, int] = {}
    for number, (minutes, name, reopened) in enumerate(plan):
        frozen.at = START + timedelta(minutes=minutes)
        ticket, _ = await tickets.create_ticket(
            db,
            subject=f"Order {number}",
            requester=people[name],
            channel="email",
            body_text="Where is it?",
            actor=Actor("customer", str(people[name].id)),
        )
        await tickets.set_status(db, ticket, "solved", actor=ADMIN)
        if reopened:
            frozen.at += timedelta(minutes=1)
            await tickets.set_status(db, ticket, "open", actor=ADMIN)
        made[f"Order {number}"] = ticket.id
    await db.flush()
    return made


async def _outcome(db: AsyncSession, since_event: int, since_mail: int) -> dict[str, Any]:
    """The invitations, the mail and the events the sender made (ids of new rows left out:
    the two ways draw different ones)."""
    mails = {
        row.id: row
        for row in await db.scalars(
            select(OutboundMail).where(OutboundMail.id > since_mail).order_by(OutboundMail.id)
        )
    }
    invitations = (
        await db.scalars(
            select(SurveyInvitation)
            .execution_options(populate_existing=True)
            .order_by(SurveyInvitation.id)
        )
    ).all()
    events = (
        await db.scalars(select(Event).where(Event.id > since_event).order_by(Event.id))
    ).all()
    return {
        "invitations": [
            (
                i.id,
                i.ticket_id,
                i.customer_id,
                i.status,
                i.skip_reason,
                i.sent_at,
                None if i.outbound_id is None else mails[i.outbound_id].ticket_id,
            )
            for i in invitations
        ],
        "mails": [
            (m.ticket_id, m.kind, m.to_address, m.subject, m.body_text, m.created_at)
            for m in mails.values()
        ],
        "events": [
            (
                e.kind,
                e.subject_id,
                e.actor_id,
                e.occurred_at,
                {k: v for k, v in e.data.items() if k not in ("outbound_id", "message_id")},
            )
            for e in events
        ],
    }


async def test_runs_in_one_call_send_and_skip_as_one_call_per_run(
    db: AsyncSession, frozen: Clock
) -> None:
    await _desk(db, frozen)
    since_event = await db.scalar(select(func.max(Event.id))) or 0
    since_mail = await db.scalar(select(func.max(OutboundMail.id))) or 0

    one_by_one = await db.begin_nested()
    for run in RUNS:
        frozen.at = run
        sent, skipped = await service.send_due_invitations(db, MAILER, now=run)
    singly = await _outcome(db, since_event, since_mail)
    await one_by_one.rollback()

    frozen.at = RUNS[-1] + timedelta(hours=5)  # the call's own time plays no part
    sent, skipped = await service.send_due_invitations(db, MAILER, runs=list(reversed(RUNS)))
    together = await _outcome(db, since_event, since_mail)

    assert together == singly
    statuses = [(status, reason) for _, _, _, status, reason, _, _ in together["invitations"]]
    assert statuses.count(("sent", None)) == len(sent) == 9
    assert statuses.count(("skipped", "throttled")) == 3
    assert statuses.count(("skipped", "reopened")) == 2
    assert statuses.count(("scheduled", None)) == 2  # due after the last run
    assert skipped == 5
    # each sent at the first run at or after its due time, throttled by an earlier run's
    sent_at = {at for *_, at, _ in together["invitations"] if at is not None}
    assert sent_at == {RUNS[0], RUNS[1], RUNS[2], RUNS[3], RUNS[4]}
    throttled = [e for e in together["events"] if e[4].get("reason") == "throttled"]
    assert [e[3] for e in throttled] == [RUNS[2], RUNS[2], RUNS[4]]
    assert "surveyed on 2026-11-02 10:00 UTC" in throttled[0][4]["detail"]


async def test_runs_and_now_do_not_go_together(db: AsyncSession, frozen: Clock) -> None:
    with pytest.raises(ValueError):
        await service.send_due_invitations(db, MAILER, now=RUNS[0], runs=RUNS)
    with pytest.raises(ValueError):
        await service.send_due_invitations(db, MAILER, runs=[])
