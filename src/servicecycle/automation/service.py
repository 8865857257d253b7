"""Rules: define, dry-run, and run them (triggers on events, time rules on a schedule)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.automation.models import Rule, RuleFiring
from servicecycle.automation.rules import (
    Facts,
    check_actions,
    check_conditions,
    check_events,
    fill,
    fill_all,
    holds,
)
from servicecycle.channels.email import outbox
from servicecycle.config import get_settings
from servicecycle.customers import service as customers
from servicecycle.events import versions
from servicecycle.events.models import Event
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from servicecycle.notifications import service as notifications
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket
from servicecycle.webhooks import service as webhooks

log = structlog.get_logger(__name__)
DRY_RUN_LIMIT = 200
TIME_BATCH = 500
# recording these means the trigger rules changed: each process reloads its copy
versions.track("automation", "rule.created", "rule.updated", "rule.disabled")


def rule_actor(rule: Rule) -> Actor:
    """Events caused by a rule name it as their actor."""
    return Actor("rule", str(rule.id))


# -- define ---------------------------------------------------------------------------------


async def create_rule(
    session: AsyncSession,
    *,
    name: str,
    kind: str,
    events: list[str],
    conditions: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    actor: Actor,
) -> Rule:
    if not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if kind not in ("trigger", "time"):
        raise ValidationFailed("Invalid kind", fields={"kind": "trigger or time"})
    check_conditions(conditions)
    check_actions(actions)
    if kind == "trigger":
        check_events(events)
    else:
        events = []
        _check_wait(conditions)
    await check_references(session, actions)
    await _check_name_free(session, name.strip())
    rule = Rule(
        name=name.strip(),
        kind=kind,
        events=events,
        conditions=conditions,
        actions=actions,
        position=len((await session.scalars(select(Rule.id))).all()),
    )
    session.add(rule)
    await session.flush()
    await record(
        session,
        "rule.created",
        subject_type="rule",
        subject_id=rule.id,
        actor=actor,
        data={"name": rule.name, "kind": kind},
    )
    return rule


def _check_wait(conditions: list[dict[str, Any]]) -> None:
    if not any(str(c.get("field", "")).startswith("ticket.hours_since") for c in conditions):
        raise ValidationFailed(
            "A time rule needs a waiting time",
            fields={"conditions": "add ticket.hours_since_update or _created"},
        )


async def _check_name_free(session: AsyncSession, name: str, own_id: int | None = None) -> None:
    stmt = select(Rule.id).where(Rule.name == name)
    if own_id is not None:
        stmt = stmt.where(Rule.id != own_id)
    if await session.scalar(stmt) is not None:
        raise Conflict("A rule with this name exists", fields={"name": "already taken"})


async def check_references(session: AsyncSession, actions: list[dict[str, Any]]) -> None:
    """The agents, teams and webhooks the actions name exist (and agents are active)."""
    for index, action in enumerate(actions):
        problem = await _missing(session, action)
        if problem:
            path, reason = problem
            where = f"actions[{index}].{path}"
            raise ValidationFailed(f"Invalid rule: {where} {reason}", fields={where: reason})


async def _missing(session: AsyncSession, action: dict[str, Any]) -> tuple[str, str] | None:
    kind, value = action.get("type"), action.get("value")
    user_id, path = (value, "value") if kind == "assign_agent" else (None, "value.to")
    if kind == "notify" and isinstance(value, dict) and isinstance(value.get("to"), int):
        user_id = value["to"]
    if kind == "add_follow_up" and isinstance(value, dict) and isinstance(value.get("owner"), int):
        user_id, path = value["owner"], "value.owner"
    if user_id is not None:
        try:
            user = await auth.get_user(session, int(user_id))
        except NotFound:
            return path, "no such user"
        if not user.is_active:
            return path, "user is deactivated"
    if kind == "assign_team" and isinstance(value, int):
        try:
            await auth.get_team(session, value)
        except NotFound:
            return "value", "no such team"
    if kind == "call_webhook" and isinstance(value, dict):
        try:
            await webhooks.get_subscription(session, int(value["webhook_id"]))
        except NotFound:
            return "value.webhook_id", "no such webhook"
    return None


async def get_rule(session: AsyncSession, rule_id: int) -> Rule:
    rule = await session.get(Rule, rule_id)
    if rule is None:
        raise NotFound(f"No rule {rule_id}")
    return rule


async def list_rules(session: AsyncSession, *, kind: str | None = None) -> list[Rule]:
    stmt = select(Rule).order_by(Rule.position, Rule.id)
    if kind:
        stmt = stmt.where(Rule.kind == kind)
    return list((await session.scalars(stmt)).all())


async def update_rule(
    session: AsyncSession,
    rule: Rule,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> Rule:
    if rule.version != expected_version:
        raise PreconditionFailed(
            "This rule was changed by someone else; reload and try again",
            extra={"current_version": rule.version},
        )
    if "name" in changes:
        changes["name"] = str(changes["name"] or "").strip()
        if not changes["name"]:
            raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
        await _check_name_free(session, changes["name"], rule.id)
    if "conditions" in changes:
        check_conditions(changes["conditions"])
        if rule.kind == "time":
            _check_wait(changes["conditions"])
    if "actions" in changes:
        check_actions(changes["actions"])
        await check_references(session, changes["actions"])
    if "events" in changes and rule.kind == "trigger":
        check_events(changes["events"])
    if rule.kind == "time":
        changes.pop("events", None)
    if changes.get("active"):
        changes["disabled_reason"] = None
    changed = {k: v for k, v in changes.items() if getattr(rule, k) != v}
    for key, value in changed.items():
        setattr(rule, key, value)
    if changed:
        await session.flush()
        await record(
            session,
            "rule.updated",
            subject_type="rule",
            subject_id=rule.id,
            actor=actor,
            data={"changes": changed},
        )
    return rule


# -- facts and actions ----------------------------------------------------------------------


async def facts_for(
    session: AsyncSession,
    ticket: Ticket,
    *,
    event: Event | None = None,
    message: Message | None = None,
) -> Facts:
    now = clock.now()
    customer = await customers.get_customer(session, ticket.requester_id)
    values: dict[str, Any] = {
        "ticket.status": ticket.status,
        "ticket.priority": ticket.priority,
        "ticket.channel": ticket.channel,
        "ticket.tags": list(ticket.tags),
        "ticket.team_id": ticket.team_id,
        "ticket.assignee_id": ticket.assignee_id,
        "ticket.subject": ticket.subject,
        "ticket.hours_since_update": (now - ticket.updated_at).total_seconds() / 3600,
        "ticket.hours_since_created": (now - ticket.created_at).total_seconds() / 3600,
        "customer.tier": customer.tier,
    }
    if event is not None:
        values["event.kind"] = event.kind
        values["sla.metric"] = event.data.get("metric")
    if message is not None:
        values |= {
            "message.author_type": message.author_type,
            "message.public": message.public,
            "message.body": message.body_text,
        }
    return Facts(values)


async def apply(session: AsyncSession, rule: Rule, ticket: Ticket) -> bool:
    """Run the rule's actions on the ticket. A rule that refers to something gone (a deleted
    team, a disabled agent) is switched off with the reason, instead of failing the caller."""
    actor = rule_actor(rule)
    try:
        async with session.begin_nested():
            for action in rule.actions:
                await act(session, ticket, action, actor, rule=rule)
    except ServiceError as exc:
        reason = exc.message + "".join(f" ({k}: {v})" for k, v in exc.fields.items())
        if isinstance(exc, ValidationFailed):
            # ``rule`` may be the shared read-only copy of the triggers: change the row
            row = rule if rule in session else await get_rule(session, rule.id)
            row.active, row.disabled_reason = False, f"Disabled: {reason}"
            await record(
                session,
                "rule.disabled",
                subject_type="rule",
                subject_id=rule.id,
                actor=actor,
                data={"reason": reason, "ticket_id": ticket.id, "rule": rule.name},
            )
            log.warning("automation.rule_disabled", rule_id=rule.id, reason=reason)
        else:  # e.g. a status change the ticket cannot make now: skip this ticket
            await record(
                session,
                "rule.skipped",
                subject_type="rule",
                subject_id=rule.id,
                actor=actor,
                data={"reason": reason, "ticket_id": ticket.id},
            )
        return False
    return True


async def placeholder_values(
    session: AsyncSession, ticket: Ticket, *, agent_id: int | None
) -> dict[str, str]:
    """What ``{{customer.name}}`` and the other placeholders stand for on this ticket."""
    customer = await customers.get_customer(session, ticket.requester_id)
    agent = await auth.get_user(session, agent_id) if agent_id else None
    return {
        "customer.name": customer.name,
        "customer.first_name": customer.name.split(" ")[0],
        "ticket.number": str(ticket.id),
        "ticket.subject": ticket.subject,
        "ticket.status": ticket.status,
        "agent.name": agent.name if agent else "",
        "agent.first_name": agent.name.split(" ")[0] if agent else "",
    }


async def act(
    session: AsyncSession,
    ticket: Ticket,
    action: dict[str, Any],
    actor: Actor,
    *,
    rule: Rule | None = None,
) -> None:
    """Run one action. A rule's own events name it (actor ``rule:<id>``, and ``rule`` in data
    for the actions that record their own event)."""
    kind: str = action["type"]
    value: Any = action.get("value")
    if kind == "set_status":
        await tickets.update_ticket(
            session, ticket, expected_version=None, changes={"status": value}, actor=actor
        )
    elif kind == "set_priority":
        await tickets.update_ticket(
            session, ticket, expected_version=None, changes={"priority": value}, actor=actor
        )
    elif kind == "assign_agent":
        await tickets.assign(
            session, ticket, assignee_id=value, team_id=ticket.team_id, actor=actor
        )
    elif kind == "assign_team":
        await tickets.assign(session, ticket, assignee_id=None, team_id=value, actor=actor)
    elif kind == "unassign":
        await tickets.assign(session, ticket, assignee_id=None, team_id=ticket.team_id, actor=actor)
    elif kind in ("add_tags", "remove_tags"):
        given = {str(t).strip().lower() for t in value}
        tags = set(ticket.tags) | given if kind == "add_tags" else set(ticket.tags) - given
        await tickets.update_ticket(
            session, ticket, expected_version=None, changes={"tags": sorted(tags)}, actor=actor
        )
    elif kind == "notify":
        await _notify(session, ticket, value, actor)
    elif kind == "add_note":
        await tickets.add_message(
            session, ticket, public=False, author_type="system", body_text=str(value), actor=actor
        )
    elif kind == "send_email":
        await _send_email(session, ticket, value, actor, rule)
    elif kind == "call_webhook":
        await _call_webhook(session, ticket, value, actor, rule)
    elif kind == "add_follow_up":
        # follow-ups sit above automation: they hear this request and plan the follow-up
        await record(
            session,
            "follow_up.requested",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=actor,
            data={**value, "kind": value.get("kind", "check_in"), **_by(rule)},
        )


def _by(rule: Rule | None) -> dict[str, Any]:
    return {"rule": {"id": rule.id, "name": rule.name}} if rule else {}


async def _send_email(
    session: AsyncSession, ticket: Ticket, value: dict[str, Any], actor: Actor, rule: Rule | None
) -> None:
    """A mail through the channels outbox (sent by its job, retried), to the requester or a
    fixed address."""
    values = await placeholder_values(session, ticket, agent_id=ticket.assignee_id)
    subject = " ".join(fill(value["subject"], values).split())[:400]
    body = fill(value["body"], values)
    fixed = None if value["to"] == "requester" else value["to"].strip()
    row = await outbox.queue(
        session,
        ticket,
        kind="rule",
        body=body,
        sender=get_settings().mail_from,
        note=_by(rule),
        to=fixed,
        subject=subject,
    )
    if row is None:
        raise ServiceError("The requester has no e-mail address", fields={"to": "requester"})
    await record(
        session,
        "rule.email_queued",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={**_by(rule), "to": row.to_address, "subject": subject, "outbound_id": row.id},
    )


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "tags": list(ticket.tags),
        "requester_id": ticket.requester_id,
        "assignee_id": ticket.assignee_id,
        "team_id": ticket.team_id,
    }


async def _call_webhook(
    session: AsyncSession, ticket: Ticket, value: dict[str, Any], actor: Actor, rule: Rule | None
) -> None:
    """A signed POST to a webhook's URL, through the webhooks outbox (retried, logged)."""
    try:
        sub = await webhooks.get_subscription(session, int(value["webhook_id"]))
    except NotFound:
        raise ValidationFailed(
            f"Webhook {value['webhook_id']} was deleted",
            fields={"webhook_id": "no such webhook"},
        ) from None
    if not sub.enabled:  # not the rule's fault: skip this ticket, keep the rule
        raise ServiceError(f"The webhook “{sub.name}” is disabled")
    values = await placeholder_values(session, ticket, agent_id=ticket.assignee_id)
    data = {
        **_by(rule),
        "ticket": ticket_summary(ticket),
        "payload": fill_all(value.get("payload") or {}, values),
    }
    event = await record(
        session,
        "rule.webhook_called",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={**_by(rule), "webhook_id": sub.id},
    )
    await webhooks.enqueue(session, sub, event, data=data)


async def _notify(
    session: AsyncSession, ticket: Ticket, value: dict[str, Any], actor: Actor
) -> None:
    to = value["to"]
    if to == "assignee":
        users = [ticket.assignee_id] if ticket.assignee_id else []
    elif to == "team":
        users = (
            [m.id for m in await auth.team_members(session, ticket.team_id)]
            if ticket.team_id
            else []
        )
    else:
        try:
            user = await auth.get_user(session, int(to))
        except NotFound:
            raise ValidationFailed(
                f"User {to} to notify was deleted", fields={"notify.to": "no such user"}
            ) from None
        if not user.is_active:
            raise ValidationFailed(
                f"User {user.name} to notify is deactivated",
                fields={"notify.to": "user is deactivated"},
            )
        users = [user.id]
    text = f"#{ticket.id} {ticket.subject}: {value['text']}"
    await notifications.notify(
        session, users, text=text, kind="rule", ticket_id=ticket.id, actor=actor
    )


# -- triggers -------------------------------------------------------------------------------


async def _load_triggers(session: AsyncSession) -> list[Rule]:
    return [versions.snapshot(rule) for rule in await list_rules(session, kind="trigger")]


async def _triggers(session: AsyncSession) -> list[Rule]:
    """The trigger rules (read-only copies), kept by each process while their version holds:
    every event reads them, and a sweep may dispatch thousands of events."""
    return await versions.cached(session, "automation", "triggers", _load_triggers)


async def _active(session: AsyncSession, rule_id: int) -> bool:
    """Is the rule still active (an earlier event of this chain may have disabled it)?"""
    return any(r.id == rule_id and r.active for r in await _triggers(session))


async def listens(session: AsyncSession, kind: str) -> bool:
    """Does any active trigger listen to ``kind``?"""
    return any(r.active and kind in r.events for r in await _triggers(session))


async def run_triggers(session: AsyncSession, event: Event) -> None:
    """Every active trigger listening to ``event.kind`` whose conditions hold acts, at most
    once per ticket in one chain of events (so rules cannot ping-pong)."""
    if event.subject_type != "ticket" or not event.subject_id.isdigit():
        return
    if session.info.get("event_depth", 1) <= 1:
        session.info["automation_fired"] = set()
    fired: set[tuple[int, int]] = session.info.setdefault("automation_fired", set())
    rules = [r for r in await _triggers(session) if r.active and event.kind in r.events]
    if not rules:
        return
    ticket = await tickets.get_ticket(session, int(event.subject_id))
    message = None
    if event.kind == "message.added" and "message_id" in event.data:
        message = await tickets.get_message(session, int(event.data["message_id"]))
    for rule in rules:
        key = (rule.id, ticket.id)
        if key in fired or not await _active(session, rule.id):
            continue
        if holds(rule.conditions, await facts_for(session, ticket, event=event, message=message)):
            fired.add(key)
            await apply(session, rule, ticket)


async def plan(session: AsyncSession, rule: Rule) -> list[str]:
    """What the rule's actions would do, in words (a dry run sends and changes nothing)."""
    words = []
    for action in rule.actions:
        kind, value = action.get("type"), action.get("value")
        if kind == "send_email" and isinstance(value, dict):
            to = "the requester" if value.get("to") == "requester" else value.get("to")
            words.append(f"send an e-mail to {to}: “{value.get('subject')}”")
        elif kind == "call_webhook" and isinstance(value, dict):
            sub = await session.get(webhooks.WebhookSubscription, value.get("webhook_id"))
            words.append(
                f"POST to the webhook “{sub.name}” ({sub.url})"
                + ("" if sub.enabled else " — disabled, so skipped")
                if sub
                else f"POST to webhook {value.get('webhook_id')}, which no longer exists"
            )
        elif kind == "notify" and isinstance(value, dict):
            words.append(f"notify {value.get('to')}: “{value.get('text')}”")
        elif kind == "add_follow_up" and isinstance(value, dict):
            words.append(
                f"plan a follow-up in {value.get('due_in_hours')} h: “{value.get('reason')}”"
            )
        elif value is None:
            words.append(str(kind).replace("_", " "))
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            words.append(f"{str(kind).replace('_', ' ')}: {shown}")
    return words


async def dry_run(session: AsyncSession, rule: Rule) -> list[int]:
    """Tickets (open ones, newest first) whose fields meet the rule's conditions right now;
    conditions on the event or message cannot hold outside an event and are ignored."""
    static = [c for c in rule.conditions if c["field"].startswith(("ticket.", "customer."))]
    page = await tickets.list_tickets(
        session,
        tickets.TicketFilter(statuses=("new", "open", "pending", "on-hold", "solved")),
        limit=1000,
    )
    matched = []
    for ticket in page.items:
        if holds(static, await facts_for(session, ticket)):
            matched.append(ticket.id)
            if len(matched) >= DRY_RUN_LIMIT:
                break
    return matched


# -- time rules -----------------------------------------------------------------------------


def _threshold(rule: Rule, field: str, now: datetime) -> datetime | None:
    hours = [c["value"] for c in rule.conditions if c["field"] == field and c["op"] == "gte"]
    return now - timedelta(hours=max(hours)) if hours else None


async def run_time_rules(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Apply each active time rule to the tickets that meet it now, once per ticket state."""
    now = now or clock.now()
    acted = 0
    for rule in await list_rules(session, kind="time"):
        if not rule.active:
            continue
        statuses = [
            v
            for c in rule.conditions
            if c["field"] == "ticket.status"
            for v in ([c["value"]] if c["op"] == "is" else c["value"] if c["op"] == "in" else [])
        ]
        after = 0
        while True:
            batch = await tickets.open_tickets_for_rules(
                session,
                statuses=statuses or None,
                updated_before=_threshold(rule, "ticket.hours_since_update", now),
                created_before=_threshold(rule, "ticket.hours_since_created", now),
                after_id=after,
                limit=TIME_BATCH,
            )
            for ticket in batch:
                if not rule.active:
                    break
                if not holds(rule.conditions, await facts_for(session, ticket)):
                    continue
                claimed = await session.execute(
                    insert(RuleFiring)
                    .values(
                        rule_id=rule.id,
                        ticket_id=ticket.id,
                        ticket_version=ticket.version,
                        fired_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(RuleFiring.id)
                )
                if claimed.scalar() is not None and await apply(session, rule, ticket):
                    acted += 1
                    # the rule's own change must not count as a new state of the ticket
                    await session.execute(
                        insert(RuleFiring)
                        .values(
                            rule_id=rule.id,
                            ticket_id=ticket.id,
                            ticket_version=ticket.version,
                            fired_at=now,
                        )
                        .on_conflict_do_nothing()
                    )
            if len(batch) < TIME_BATCH:
                break
            after = batch[-1].id
    return acted
