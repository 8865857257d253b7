"""Macros: canned replies with placeholders, plus actions. Flushes; the caller commits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.automation.models import Macro
from servicecycle.automation.rules import check_actions
from servicecycle.automation.service import act
from servicecycle.customers import service as customers
from servicecycle.events.service import Actor, record
from servicecycle.kit.errors import NotFound, PermissionDenied, ValidationFailed
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
PLACEHOLDERS = (
    "customer.name",
    "customer.first_name",
    "ticket.number",
    "ticket.subject",
    "ticket.status",
    "agent.name",
    "agent.first_name",
)


def check_body(body: str) -> str:
    unknown = sorted({p for p in PLACEHOLDER.findall(body) if p not in PLACEHOLDERS})
    if unknown:
        raise ValidationFailed(
            "Unknown placeholder",
            fields={"body": f"unknown {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}"},
        )
    return body


def render(body: str, values: dict[str, str]) -> str:
    """Fill the placeholders; the values are plain text (escaped when the body becomes HTML)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), body)


@dataclass(frozen=True)
class Preview:
    body: str
    public: bool
    actions: list[dict[str, Any]]


async def create_macro(
    session: AsyncSession,
    *,
    name: str,
    body: str,
    public: bool,
    actions: list[dict[str, Any]],
    shared: bool,
    owner_id: int,
    is_admin: bool,
    actor: Actor,
) -> Macro:
    if not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if shared and not is_admin:
        raise PermissionDenied("Only admins can share macros with everyone")
    if not body.strip() and not actions:
        raise ValidationFailed("A macro needs a reply or actions", fields={"body": "empty"})
    if actions:
        check_actions(actions)
    macro = Macro(
        name=name.strip(),
        body=check_body(body),
        public=public,
        actions=actions,
        owner_id=None if shared else owner_id,
    )
    session.add(macro)
    await session.flush()
    await record(
        session,
        "macro.created",
        subject_type="macro",
        subject_id=macro.id,
        actor=actor,
        data={"name": macro.name, "shared": shared},
    )
    return macro


async def macros_for(session: AsyncSession, user_id: int) -> list[Macro]:
    stmt = select(Macro).where(or_(Macro.owner_id.is_(None), Macro.owner_id == user_id))
    return list((await session.scalars(stmt.order_by(Macro.name))).all())


async def get_macro(session: AsyncSession, macro_id: int, *, user_id: int) -> Macro:
    macro = await session.get(Macro, macro_id)
    if macro is None or (macro.owner_id is not None and macro.owner_id != user_id):
        raise NotFound(f"No macro {macro_id}")
    return macro


async def preview(session: AsyncSession, macro: Macro, ticket: Ticket, *, agent_id: int) -> Preview:
    customer = await customers.get_customer(session, ticket.requester_id)
    agent = await auth.get_user(session, agent_id)
    values = {
        "customer.name": customer.name,
        "customer.first_name": customer.name.split(" ")[0],
        "ticket.number": str(ticket.id),
        "ticket.subject": ticket.subject,
        "ticket.status": ticket.status,
        "agent.name": agent.name,
        "agent.first_name": agent.name.split(" ")[0],
    }
    return Preview(body=render(macro.body, values), public=macro.public, actions=macro.actions)


async def apply_macro(
    session: AsyncSession,
    macro: Macro,
    ticket: Ticket,
    *,
    agent_id: int,
    body: str | None,
    actor: Actor,
) -> Message | None:
    """Send the (previewed, maybe edited) reply and run the macro's actions."""
    shown = await preview(session, macro, ticket, agent_id=agent_id)
    text = shown.body if body is None else body
    message = None
    if text.strip():
        message = await tickets.add_message(
            session,
            ticket,
            public=macro.public,
            author_type="agent",
            author_user_id=agent_id,
            body_text=text,
            actor=actor,
        )
    for action in macro.actions:
        await act(session, ticket, action, actor)
    await record(
        session,
        "macro.applied",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={"macro_id": macro.id, "name": macro.name},
    )
    return message
