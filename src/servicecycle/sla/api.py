"""REST routes for calendars, SLA policies and a ticket's clocks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from servicecycle.auth.deps import ApiAdmin, ApiUser, Db
from servicecycle.sla import service
from servicecycle.sla.schemas import (
    CalendarCreate,
    CalendarRead,
    CalendarUpdate,
    ClockRead,
    PolicyCreate,
    PolicyRead,
    PolicyUpdate,
)
from servicecycle.tickets import service as tickets
from servicecycle.web.concurrency import parse_if_match

router = APIRouter(prefix="/api/v1", tags=["service standards"])


@router.get("/calendars", response_model=list[CalendarRead])
async def list_calendars(principal: ApiUser, db: Db) -> list[CalendarRead]:
    return [CalendarRead.model_validate(c) for c in await service.list_calendars(db)]


@router.post(
    "/calendars",
    response_model=CalendarRead,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "Bad hours, zone or country; or no working time"}},
)
async def create_calendar(body: CalendarCreate, principal: ApiAdmin, db: Db) -> CalendarRead:
    row = await service.create_calendar(db, actor=principal.actor, **body.model_dump())
    return CalendarRead.model_validate(row)


@router.get("/calendars/{calendar_id}", response_model=CalendarRead)
async def get_calendar(calendar_id: int, principal: ApiUser, db: Db) -> CalendarRead:
    return CalendarRead.model_validate(await service.get_calendar(db, calendar_id))


@router.patch(
    "/calendars/{calendar_id}",
    response_model=CalendarRead,
    responses={
        409: {"description": "The name is taken"},
        412: {"description": "Changed by someone else (send the version you read)"},
        422: {"description": "Bad hours, zone or country; or no working time"},
    },
)
async def update_calendar(
    calendar_id: int,
    body: CalendarUpdate,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> CalendarRead:
    expected = parse_if_match(if_match, body.version)
    row = await service.get_calendar(db, calendar_id)
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    for key in ("name", "zone", "week", "closed_days"):
        if key in changes and changes[key] is None:
            changes.pop(key)
    row = await service.update_calendar(
        db, row, expected_version=expected, changes=changes, actor=principal.actor
    )
    return CalendarRead.model_validate(row)


@router.delete(
    "/calendars/{calendar_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "Policies use it; the error names them"}},
)
async def delete_calendar(
    calendar_id: int,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    row = await service.get_calendar(db, calendar_id)
    expected = parse_if_match(if_match, None) if if_match is not None else None
    await service.delete_calendar(db, row, expected_version=expected, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sla-policies", response_model=list[PolicyRead])
async def list_policies(principal: ApiUser, db: Db) -> list[PolicyRead]:
    return [PolicyRead.model_validate(p) for p in await service.list_policies(db)]


@router.post(
    "/sla-policies",
    response_model=PolicyRead,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "The name is taken"},
        422: {"description": "Names the bad path"},
    },
)
async def create_policy(body: PolicyCreate, principal: ApiAdmin, db: Db) -> PolicyRead:
    policy = await service.create_policy(db, actor=principal.actor, **body.model_dump())
    return PolicyRead.model_validate(policy)


@router.patch(
    "/sla-policies/{policy_id}",
    response_model=PolicyRead,
    responses={
        409: {"description": "The name is taken"},
        412: {"description": "Changed by someone else (send the version you read)"},
        422: {"description": "Names the bad path"},
    },
)
async def update_policy(
    policy_id: int,
    body: PolicyUpdate,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> PolicyRead:
    expected = parse_if_match(if_match, body.version)
    policy = await service.get_policy(db, policy_id)
    policy = await service.update_policy(
        db,
        policy,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    return PolicyRead.model_validate(policy)


@router.get("/sla-policies/{policy_id}", response_model=PolicyRead)
async def get_policy(policy_id: int, principal: ApiUser, db: Db) -> PolicyRead:
    return PolicyRead.model_validate(await service.get_policy(db, policy_id))


@router.delete(
    "/sla-policies/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "Open tickets are still timed by it: deactivate it instead"}},
)
async def delete_policy(
    policy_id: int,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    policy = await service.get_policy(db, policy_id)
    expected = parse_if_match(if_match, None) if if_match is not None else None
    await service.delete_policy(db, policy, expected_version=expected, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/sla/due",
    response_model=list[ClockRead],
    summary="Clocks soonest due first: the queue to work on, or what is already breached",
)
async def due(
    principal: ApiUser,
    db: Db,
    within_minutes: Annotated[int | None, Query(ge=0, le=525_600)] = None,
    breached: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ClockRead]:
    clocks = await service.due_clocks(
        db, within_minutes=within_minutes, breached=breached, limit=limit
    )
    return [ClockRead.model_validate(c) for c in clocks]


@router.get(
    "/tickets/{ticket_id}/sla",
    response_model=list[ClockRead],
    tags=["tickets"],
    summary="The ticket's SLA clocks: targets, time used, due and breach times",
)
async def ticket_clocks(ticket_id: int, principal: ApiUser, db: Db) -> list[ClockRead]:
    ticket = await tickets.get_ticket(db, ticket_id)
    return [ClockRead.model_validate(c) for c in await service.clocks_of(db, ticket.id)]
