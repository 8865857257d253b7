from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Team
from servicecycle.automation import service as automation
from servicecycle.automation.rules import Facts, check_actions, check_conditions, holds
from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets import service as tickets

ADMIN = Actor.user(1)
Make = Callable[..., Awaitable[Any]]


@pytest.fixture
def frozen() -> Iterator[list[datetime]]:
    moment = [datetime(2026, 6, 1, 9, tzinfo=UTC)]
    clock.set_source(lambda: moment[0])
    yield moment
    clock.set_source(None)


def test_conditions_and_actions_are_typed_and_errors_name_the_path() -> None:
    check_conditions([{"field": "ticket.priority", "op": "in", "value": ["high", "urgent"]}])
    for bad, path in (
        ([{"field": "ticket.colour", "op": "is", "value": "red"}], "conditions[0].field"),
        ([{"field": "ticket.priority", "op": "gte", "value": "high"}], "conditions[0].op"),
        ([{"field": "ticket.priority", "op": "is", "value": "extreme"}], "conditions[0].value"),
        ([{"field": "ticket.team_id", "op": "is", "value": "two"}], "conditions[0].value"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            check_conditions(bad)
        assert list(caught.value.fields) == [path]
    with pytest.raises(ValidationFailed) as caught:
        check_actions([{"type": "set_status", "value": "open"}, {"type": "explode"}])
    assert list(caught.value.fields) == ["actions[1].type"]
    facts = Facts({"ticket.tags": ["vip", "late"], "message.body": "Where is my REFUND?"})
    assert holds(
        [
            {"field": "ticket.tags", "op": "contains", "value": "vip"},
            {"field": "message.body", "op": "contains", "value": "refund"},
        ],
        facts,
    )


async def test_a_trigger_chain_runs_and_every_action_names_its_rule(
    db: AsyncSession, make_ticket: Make
) -> None:
    first = await automation.create_rule(
        db,
        name="Refunds are high priority",
        kind="trigger",
        events=["ticket.created"],
        conditions=[{"field": "ticket.subject", "op": "contains", "value": "refund"}],
        actions=[
            {"type": "set_priority", "value": "high"},
            {"type": "add_tags", "value": ["refund"]},
        ],
        actor=ADMIN,
    )
    second = await automation.create_rule(
        db,
        name="High priority gets a note",
        kind="trigger",
        events=["ticket.updated"],
        conditions=[{"field": "ticket.priority", "op": "is", "value": "high"}],
        actions=[{"type": "add_note", "value": "Check the payment provider first."}],
        actor=ADMIN,
    )
    ticket = await make_ticket("Refund for order 9")
    ticket = await tickets.get_ticket(db, ticket.id)
    await db.refresh(ticket)
    assert ticket.priority == "high" and ticket.tags == ["refund"]
    notes = [m.body_text for m in await tickets.thread(db, ticket) if not m.public]
    assert notes == ["Check the payment provider first."]
    log = (
        await events.query(db, subject_type="ticket", subject_id=ticket.id, newest_first=False)
    ).items
    by_rule = {(e.kind, e.actor_id) for e in log if e.actor_type == "rule"}
    assert ("ticket.updated", str(first.id)) in by_rule and (
        "message.added",
        str(second.id),
    ) in by_rule


async def test_rules_cannot_loop(db: AsyncSession, make_ticket: Make) -> None:
    for name, have, give, take in (("ping", "a", "b", "a"), ("pong", "b", "a", "b")):
        await automation.create_rule(
            db,
            name=name,
            kind="trigger",
            events=["ticket.created", "ticket.updated"],
            conditions=[{"field": "ticket.tags", "op": "contains", "value": have}],
            actions=[
                {"type": "add_tags", "value": [give]},
                {"type": "remove_tags", "value": [take]},
            ],
            actor=ADMIN,
        )
    ticket = await make_ticket(tags=["a"])
    ticket = await tickets.get_ticket(db, ticket.id)
    await db.refresh(ticket)
    log = await events.query(db, subject_type="ticket", subject_id=ticket.id, limit=200)
    by_rule = [e.actor_id for e in log.items if e.actor_type == "rule"]
    # both rules ran, each once in the chain (at most two changes each), then it stopped
    assert set(by_rule) == {str(r.id) for r in await automation.list_rules(db)}
    assert len(by_rule) <= 4


async def test_a_rule_pointing_at_a_missing_team_is_disabled_with_a_reason(
    db: AsyncSession, make_ticket: Make
) -> None:
    team = await auth.create_team(db, name="Old team", description="", actor=ADMIN)
    rule = await automation.create_rule(
        db,
        name="To the old team",
        kind="trigger",
        events=["ticket.created"],
        conditions=[],
        actions=[{"type": "assign_team", "value": team.id}],
        actor=ADMIN,
    )
    await db.execute(delete(Team).where(Team.id == team.id))  # gone since (no delete exists)
    ticket = await make_ticket()  # the ticket is still created
    assert (await tickets.get_ticket(db, ticket.id)).team_id is None
    await db.refresh(rule)
    assert rule.active is False and "team_id" in (rule.disabled_reason or "")


async def test_dry_run_lists_matching_tickets(db: AsyncSession, make_ticket: Make) -> None:
    urgent = await make_ticket("Server down", priority="urgent")
    await make_ticket("Question", priority="low")
    rule = await automation.create_rule(
        db,
        name="Urgent",
        kind="trigger",
        events=["ticket.updated"],
        conditions=[{"field": "ticket.priority", "op": "is", "value": "urgent"}],
        actions=[{"type": "add_tags", "value": ["urgent"]}],
        actor=ADMIN,
    )
    assert await automation.dry_run(db, rule) == [urgent.id]


async def test_time_rules_remind_then_solve_pending_tickets_once(
    db: AsyncSession, make_ticket: Make, frozen: list[datetime]
) -> None:
    await automation.create_rule(
        db,
        name="Remind after 3 days",
        kind="time",
        events=[],
        conditions=[
            {"field": "ticket.status", "op": "is", "value": "pending"},
            {"field": "ticket.hours_since_update", "op": "gte", "value": 72},
        ],
        actions=[
            {"type": "add_note", "value": "Reminder sent"},
            {"type": "add_tags", "value": ["reminded"]},
        ],
        actor=ADMIN,
    )
    await automation.create_rule(
        db,
        name="Solve after 7 days",
        kind="time",
        events=[],
        conditions=[
            {"field": "ticket.status", "op": "is", "value": "pending"},
            {"field": "ticket.hours_since_created", "op": "gte", "value": 168},
        ],
        actions=[{"type": "set_status", "value": "solved"}],
        actor=ADMIN,
    )
    ticket = await tickets.get_ticket(db, (await make_ticket()).id)
    await tickets.update_ticket(
        db, ticket, expected_version=None, changes={"status": "pending"}, actor=ADMIN
    )
    frozen[0] += timedelta(hours=71)
    assert await automation.run_time_rules(db) == 0
    frozen[0] += timedelta(hours=2)
    assert await automation.run_time_rules(db) == 1
    assert await automation.run_time_rules(db) == 0  # once per ticket state
    assert "reminded" in ticket.tags
    frozen[0] += timedelta(days=5)
    assert await automation.run_time_rules(db) >= 1
    assert ticket.status == "solved"


async def test_sla_breach_escalates_through_a_trigger(
    db: AsyncSession, make_customer: Make, frozen: list[datetime]
) -> None:
    from servicecycle.sla import service as sla

    await sla.create_policy(
        db,
        name="Fast",
        conditions={},
        targets={"first_reply": {"minutes": 30, "business": False}},
        calendar_id=None,
        pause_statuses=["pending"],
        warn_minutes=5,
        actor=ADMIN,
    )
    await automation.create_rule(
        db,
        name="Escalate breaches",
        kind="trigger",
        events=["sla.breached"],
        conditions=[{"field": "sla.metric", "op": "is", "value": "first_reply"}],
        actions=[
            {"type": "set_priority", "value": "urgent"},
            {"type": "add_tags", "value": ["escalated"]},
        ],
        actor=ADMIN,
    )
    customer = await db.merge(await make_customer())
    ticket, _ = await tickets.create_ticket(
        db, subject="Hello?", requester=customer, channel="chat", body_text="anyone?", actor=ADMIN
    )
    frozen[0] += timedelta(minutes=31)
    await sla.sweep(db)
    assert (ticket.priority, ticket.tags) == ("urgent", ["escalated"])


async def test_a_warning_notifies_the_team(
    db: AsyncSession, make_customer: Make, make_user: Make, frozen: list[datetime]
) -> None:
    from servicecycle.auth import service as auth
    from servicecycle.notifications import service as notifications
    from servicecycle.sla import service as sla

    team = await auth.create_team(db, name="Escalations", description="", actor=ADMIN)
    lead = await auth.get_user(db, (await make_user("agent")).id)
    await auth.add_team_member(db, team, lead, actor=ADMIN)
    await sla.create_policy(
        db,
        name="Quick",
        conditions={},
        targets={"first_reply": {"minutes": 60, "business": False}},
        calendar_id=None,
        pause_statuses=[],
        warn_minutes=15,
        actor=ADMIN,
    )
    await automation.create_rule(
        db,
        name="Warn the team",
        kind="trigger",
        events=["sla.warning"],
        conditions=[],
        actions=[{"type": "notify", "value": {"to": "team", "text": "first reply due soon"}}],
        actor=ADMIN,
    )
    with pytest.raises(ValidationFailed) as bad:
        check_actions([{"type": "notify", "value": {"to": "everyone", "text": "x"}}])
    assert list(bad.value.fields) == ["actions[0].value.to"]
    customer = await db.merge(await make_customer())
    ticket, _ = await tickets.create_ticket(
        db,
        subject="Printer",
        requester=customer,
        channel="web",
        body_text="jammed",
        team_id=team.id,
        actor=ADMIN,
    )
    frozen[0] += timedelta(minutes=50)
    assert await sla.sweep(db) == (1, 0)
    inbox = await notifications.unread(db, lead.id)
    assert [(n.ticket_id, n.text) for n in inbox] == [
        (ticket.id, f"#{ticket.id} Printer: first reply due soon")
    ]
    assert await notifications.mark_read(db, lead.id, None) == 1
    assert await notifications.unread_count(db, lead.id) == 0


async def test_a_time_rule_does_not_fire_again_because_of_its_own_change(
    db: AsyncSession, make_ticket: Make, frozen: list[datetime]
) -> None:
    await automation.create_rule(
        db,
        name="Old tickets get a tag",
        kind="time",
        events=[],
        conditions=[{"field": "ticket.hours_since_created", "op": "gte", "value": 1}],
        actions=[{"type": "add_tags", "value": ["old"]}],
        actor=ADMIN,
    )
    await make_ticket()
    frozen[0] += timedelta(hours=2)
    assert await automation.run_time_rules(db) == 1
    frozen[0] += timedelta(minutes=5)
    assert await automation.run_time_rules(db) == 0
    frozen[0] += timedelta(days=1)
    assert await automation.run_time_rules(db) == 0
