"""Macros: canned replies with placeholders, plus actions. Flushes; the caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.automation.models import Macro
from servicecycle.automation.rules import (
    PLACEHOLDERS as PLACEHOLDERS,
)
from servicecycle.automation.rules import (
    check_actions,
    fill,
    unknown_placeholders,
)
from servicecycle.automation.service import act, check_references, placeholder_values
from servicecycle.events.service import Actor, record
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket


def check_body(body: str) -> str:
    unknown = unknown_placeholders(body)
    if unknown:
        raise ValidationFailed(
            "Unknown placeholder",
            fields={"body": f"unknown {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}"},
        )
    return body


def render(body: str, values: dict[str, str]) -> str:
    """Fill the placeholders; the values are plain text (escaped when the body becomes HTML)."""
    return fill(body, values)


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
        await check_references(session, actions)
    await _check_name_free(session, name.strip(), owner_id=None if shared else owner_id)
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


async def _check_name_free(
    session: AsyncSession, name: str, *, owner_id: int | None, own_id: int | None = None
) -> None:
    """Shared macros have names unique among shared ones; personal ones among their owner's."""
    stmt = select(Macro.id).where(
        Macro.name == name,
        Macro.owner_id.is_(None) if owner_id is None else Macro.owner_id == owner_id,
    )
    if own_id is not None:
        stmt = stmt.where(Macro.id != own_id)
    if await session.scalar(stmt) is not None:
        raise Conflict("A macro with this name exists", fields={"name": "already taken"})


def _check_may_change(macro: Macro, *, is_admin: bool) -> None:
    if macro.owner_id is None and not is_admin:
        raise PermissionDenied("Only admins can change shared macros")


async def update_macro(
    session: AsyncSession,
    macro: Macro,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    is_admin: bool,
    actor: Actor,
) -> Macro:
    """Change a macro (its owner, or an admin for shared ones); the name stays unique."""
    _check_may_change(macro, is_admin=is_admin)
    if expected_version is not None and macro.version != expected_version:
        raise PreconditionFailed(
            "This macro was changed by someone else; reload and try again",
            extra={"current_version": macro.version},
        )
    changes = dict(changes)
    if "name" in changes:
        changes["name"] = str(changes["name"] or "").strip()
        if not changes["name"]:
            raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
        await _check_name_free(session, changes["name"], owner_id=macro.owner_id, own_id=macro.id)
    if "body" in changes:
        check_body(changes["body"])
    if changes.get("actions"):
        check_actions(changes["actions"])
        await check_references(session, changes["actions"])
    body = changes.get("body", macro.body)
    if not body.strip() and not changes.get("actions", macro.actions):
        raise ValidationFailed("A macro needs a reply or actions", fields={"body": "empty"})
    changed = {k: v for k, v in changes.items() if getattr(macro, k) != v}
    for key, value in changed.items():
        setattr(macro, key, value)
    if changed:
        await session.flush()
        await session.refresh(macro)
        await record(
            session,
            "macro.updated",
            subject_type="macro",
            subject_id=macro.id,
            actor=actor,
            data={"changes": changed},
        )
    return macro


async def delete_macro(
    session: AsyncSession, macro: Macro, *, is_admin: bool, actor: Actor
) -> None:
    _check_may_change(macro, is_admin=is_admin)
    await record(
        session,
        "macro.deleted",
        subject_type="macro",
        subject_id=macro.id,
        actor=actor,
        data={"name": macro.name},
    )
    await session.delete(macro)
    await session.flush()


async def macros_for(session: AsyncSession, user_id: int) -> list[Macro]:
    stmt = select(Macro).where(or_(Macro.owner_id.is_(None), Macro.owner_id == user_id))
    return list((await session.scalars(stmt.order_by(Macro.name))).all())


async def get_macro(session: AsyncSession, macro_id: int, *, user_id: int) -> Macro:
    macro = await session.get(Macro, macro_id)
    if macro is None or (macro.owner_id is not None and macro.owner_id != user_id):
        raise NotFound(f"No macro {macro_id}")
    return macro


async def preview(session: AsyncSession, macro: Macro, ticket: Ticket, *, agent_id: int) -> Preview:
    values = await placeholder_values(session, ticket, agent_id=agent_id)
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
