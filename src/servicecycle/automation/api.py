"""REST routes for automation rules and macros."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Response, status

from servicecycle.auth.deps import ApiAdmin, ApiAgent, ApiUser, Db
from servicecycle.auth.models import Role
from servicecycle.automation import macros, service
from servicecycle.automation.schemas import (
    DryRun,
    MacroApply,
    MacroCreate,
    MacroPreview,
    MacroRead,
    MacroUpdate,
    RuleCreate,
    RuleRead,
    RuleUpdate,
)
from servicecycle.tickets import service as tickets
from servicecycle.tickets.api import read_messages
from servicecycle.tickets.schemas import MessageRead
from servicecycle.web.concurrency import parse_if_match

router = APIRouter(prefix="/api/v1", tags=["automation"])


@router.get("/rules", response_model=list[RuleRead])
async def list_rules(
    principal: ApiAdmin, db: Db, kind: Literal["trigger", "time"] | None = None
) -> list[RuleRead]:
    return [RuleRead.model_validate(r) for r in await service.list_rules(db, kind=kind)]


@router.post(
    "/rules",
    response_model=RuleRead,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "Invalid rule; `fields` names the bad path"}},
)
async def create_rule(body: RuleCreate, principal: ApiAdmin, db: Db) -> RuleRead:
    rule = await service.create_rule(db, actor=principal.actor, **body.model_dump())
    return RuleRead.model_validate(rule)


@router.patch(
    "/rules/{rule_id}",
    response_model=RuleRead,
    responses={
        409: {"description": "The name is taken"},
        412: {"description": "The rule changed since it was read"},
        422: {"description": "Invalid rule; `fields` names the bad path"},
    },
)
async def update_rule(
    rule_id: int,
    body: RuleUpdate,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> RuleRead:
    expected = parse_if_match(if_match, body.version)
    rule = await service.get_rule(db, rule_id)
    rule = await service.update_rule(
        db,
        rule,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    return RuleRead.model_validate(rule)


@router.post(
    "/rules/{rule_id}/dry-run",
    response_model=DryRun,
    summary="Which open tickets would match this rule now",
)
async def dry_run(rule_id: int, principal: ApiAdmin, db: Db) -> DryRun:
    rule = await service.get_rule(db, rule_id)
    return DryRun(ticket_ids=await service.dry_run(db, rule), actions=await service.plan(db, rule))


@router.get("/macros", response_model=list[MacroRead], tags=["macros"])
async def list_macros(principal: ApiUser, db: Db) -> list[MacroRead]:
    return [MacroRead.model_validate(m) for m in await macros.macros_for(db, principal.identity.id)]


@router.post(
    "/macros", response_model=MacroRead, status_code=status.HTTP_201_CREATED, tags=["macros"]
)
async def create_macro(body: MacroCreate, principal: ApiAgent, db: Db) -> MacroRead:
    macro = await macros.create_macro(
        db,
        owner_id=principal.identity.id,
        is_admin=principal.role == Role.admin,
        actor=principal.actor,
        **body.model_dump(),
    )
    return MacroRead.model_validate(macro)


@router.patch(
    "/macros/{macro_id}",
    response_model=MacroRead,
    tags=["macros"],
    summary="Change a macro (its owner; shared ones: admins)",
    responses={
        409: {"description": "The name is taken"},
        412: {"description": "The macro changed since it was read"},
        422: {"description": "Invalid macro; `fields` names the bad path"},
    },
)
async def update_macro(
    macro_id: int,
    body: MacroUpdate,
    principal: ApiAgent,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> MacroRead:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    given = if_match is not None or body.version is not None
    expected = parse_if_match(if_match, body.version) if given else None
    macro = await macros.update_macro(
        db,
        macro,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        expected_version=expected,
        is_admin=principal.role == Role.admin,
        actor=principal.actor,
    )
    return MacroRead.model_validate(macro)


@router.delete("/macros/{macro_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["macros"])
async def delete_macro(macro_id: int, principal: ApiAgent, db: Db) -> Response:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    await macros.delete_macro(
        db, macro, is_admin=principal.role == Role.admin, actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/tickets/{ticket_id}/macros/{macro_id}/preview", response_model=MacroPreview, tags=["macros"]
)
async def preview_macro(ticket_id: int, macro_id: int, principal: ApiUser, db: Db) -> MacroPreview:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    ticket = await tickets.get_ticket(db, ticket_id)
    shown = await macros.preview(db, macro, ticket, agent_id=principal.identity.id)
    return MacroPreview(body=shown.body, public=shown.public, actions=shown.actions)


@router.post(
    "/tickets/{ticket_id}/macros/{macro_id}",
    response_model=list[MessageRead],
    tags=["macros"],
    summary="Apply a macro: send its reply and run its actions",
)
async def apply_macro(
    ticket_id: int, macro_id: int, body: MacroApply, principal: ApiAgent, db: Db
) -> list[MessageRead]:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    ticket = await tickets.get_ticket(db, ticket_id)
    message = await macros.apply_macro(
        db, macro, ticket, agent_id=principal.identity.id, body=body.body, actor=principal.actor
    )
    return await read_messages(db, [message] if message else [])
