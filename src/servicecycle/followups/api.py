"""REST routes of follow-ups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from servicecycle.auth.deps import ApiAdmin, ApiAgent, ApiUser, Db, Principal
from servicecycle.followups import service
from servicecycle.followups.models import FollowUp
from servicecycle.followups.schemas import (
    CheckIn,
    CheckInPreview,
    CheckInRead,
    CountsRead,
    FollowUpCancel,
    FollowUpCreate,
    FollowUpDone,
    FollowUpPage,
    FollowUpRead,
    FollowUpUpdate,
    RecoveryRead,
    SettingsRead,
    SettingsUpdate,
)
from servicecycle.kit import clock
from servicecycle.kit.errors import ValidationFailed
from servicecycle.web.concurrency import etag, parse_if_match

router = APIRouter(prefix="/api/v1", tags=["follow-ups"])


def _read(follow_up: FollowUp) -> FollowUpRead:
    read = FollowUpRead.model_validate(follow_up)
    read.overdue = follow_up.state == "open" and follow_up.due_at < clock.now()
    return read


def _owner(owner: str | None, principal: Principal) -> int | str | None:
    if owner is None:
        return None
    if owner == "me":
        return principal.identity.id
    if owner == "none":
        return "none"
    if not owner.isdigit():
        raise ValidationFailed("Invalid owner", fields={"owner": "a user id, me or none"})
    return int(owner)


@router.get("/follow-ups", response_model=FollowUpPage, summary="Follow-ups, soonest due first")
async def list_follow_ups(
    principal: ApiUser,
    db: Db,
    owner: Annotated[str | None, Query(description="A user id, `me` or `none`")] = None,
    state: Annotated[
        str | None, Query(description="open (the default), done, cancelled, or `any`")
    ] = "open",
    overdue: Annotated[bool, Query(description="Only open ones past their due time")] = False,
    ticket_id: Annotated[int | None, Query(alias="ticket")] = None,
    customer_id: Annotated[int | None, Query(alias="customer")] = None,
    kind: Annotated[str | None, Query(description="check_in, recovery, other")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> FollowUpPage:
    flt = service.Filter(
        owner=_owner(owner, principal),
        state=None if state == "any" else state,
        overdue=overdue,
        ticket_id=ticket_id,
        customer_id=customer_id,
        kind=kind,
    )
    page = await service.list_follow_ups(db, flt, limit=limit, cursor=cursor)
    return FollowUpPage(items=[_read(f) for f in page.items], next_cursor=page.next_cursor)


@router.post(
    "/follow-ups",
    response_model=FollowUpRead,
    status_code=status.HTTP_201_CREATED,
    summary="Plan a follow-up",
)
async def create_follow_up(
    body: FollowUpCreate, principal: ApiAgent, db: Db, response: Response
) -> FollowUpRead:
    follow_up = await service.create(db, actor=principal.actor, **body.model_dump())
    response.headers["Location"] = f"/api/v1/follow-ups/{follow_up.id}"
    response.headers["ETag"] = etag(follow_up.version)
    return _read(follow_up)


@router.get("/follow-ups/counts", response_model=CountsRead, summary="Overdue and due today")
async def counts(
    principal: ApiUser,
    db: Db,
    owner: Annotated[str | None, Query(description="A user id or `me`; empty: everyone's")] = None,
) -> CountsRead:
    who = _owner(owner, principal)
    if who == "none":
        raise ValidationFailed("Invalid owner", fields={"owner": "a user id or me"})
    found = await service.counts(db, owner_id=who if isinstance(who, int) else None)
    return CountsRead(overdue=found.overdue, due_today=found.due_today, open=found.open)


@router.get(
    "/follow-ups/recovery",
    response_model=RecoveryRead,
    summary="Detractor recovery: opened, closed in time or late, still open, and the rate",
)
async def recovery(
    principal: ApiUser,
    db: Db,
    since: Annotated[datetime | None, Query(description="Opened from (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Opened before")] = None,
    owner: Annotated[str | None, Query(description="A user id or `me`")] = None,
) -> RecoveryRead:
    who = _owner(owner, principal)
    if who == "none":
        raise ValidationFailed("Invalid owner", fields={"owner": "a user id or me"})
    found = await service.recovery_report(
        db, since=since, until=until, owner_id=who if isinstance(who, int) else None
    )
    return RecoveryRead(
        opened=found.opened,
        closed_in_time=found.closed_in_time,
        closed_late=found.closed_late,
        still_open=found.still_open,
        cancelled=found.cancelled,
        rate=found.rate,
    )


def _settings_read(recovery_hours: int, template: str) -> SettingsRead:
    return SettingsRead(
        recovery_hours=recovery_hours,
        check_in_template=template,
        default_check_in_template=service.DEFAULT_CHECK_IN,
    )


@router.get(
    "/follow-ups/settings", response_model=SettingsRead, summary="Recovery hours, check-in text"
)
async def read_settings(principal: ApiUser, db: Db) -> SettingsRead:
    row = await service.read_settings(db)
    return _settings_read(row.recovery_hours, row.check_in_template)


@router.put(
    "/follow-ups/settings", response_model=SettingsRead, summary="Change the settings (admins)"
)
async def save_settings(body: SettingsUpdate, principal: ApiAdmin, db: Db) -> SettingsRead:
    row = await service.save_settings(
        db,
        recovery_hours=body.recovery_hours,
        check_in_template=body.check_in_template,
        actor=principal.actor,
    )
    return _settings_read(row.recovery_hours, row.check_in_template)


@router.get("/follow-ups/{follow_up_id}", response_model=FollowUpRead)
async def get_follow_up(
    follow_up_id: int, principal: ApiUser, db: Db, response: Response
) -> FollowUpRead:
    follow_up = await service.get(db, follow_up_id)
    response.headers["ETag"] = etag(follow_up.version)
    return _read(follow_up)


@router.patch(
    "/follow-ups/{follow_up_id}",
    response_model=FollowUpRead,
    summary="Reschedule, reassign or reword (If-Match or `version`)",
)
async def update_follow_up(
    follow_up_id: int,
    body: FollowUpUpdate,
    principal: ApiAgent,
    db: Db,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> FollowUpRead:
    expected = parse_if_match(if_match, body.version)
    follow_up = await service.get(db, follow_up_id)
    follow_up = await service.update(
        db,
        follow_up,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    response.headers["ETag"] = etag(follow_up.version)
    return _read(follow_up)


@router.post(
    "/follow-ups/{follow_up_id}/done",
    response_model=FollowUpRead,
    summary="Close the loop (an outcome is required)",
)
async def complete(
    follow_up_id: int, body: FollowUpDone, principal: ApiAgent, db: Db
) -> FollowUpRead:
    follow_up = await service.get(db, follow_up_id)
    follow_up = await service.complete(
        db, follow_up, outcome=body.outcome, note=body.note, actor=principal.actor
    )
    return _read(follow_up)


@router.post("/follow-ups/{follow_up_id}/cancel", response_model=FollowUpRead)
async def cancel(
    follow_up_id: int, principal: ApiAgent, db: Db, body: FollowUpCancel | None = None
) -> FollowUpRead:
    follow_up = await service.get(db, follow_up_id)
    follow_up = await service.cancel(
        db, follow_up, note=body.note if body else "", actor=principal.actor
    )
    return _read(follow_up)


@router.get(
    "/follow-ups/{follow_up_id}/check-in",
    response_model=CheckInPreview,
    summary="The check-in text as it would be sent by you now",
)
async def preview_check_in(follow_up_id: int, principal: ApiAgent, db: Db) -> CheckInPreview:
    follow_up = await service.get(db, follow_up_id)
    text = await service.check_in_text(db, follow_up, agent_id=principal.identity.id)
    return CheckInPreview(body=text)


@router.post(
    "/follow-ups/{follow_up_id}/check-in",
    response_model=CheckInRead,
    summary="Send the check-in: a public reply on the ticket (mailed on e-mail tickets)",
)
async def send_check_in(
    follow_up_id: int, principal: ApiAgent, db: Db, body: CheckIn | None = None
) -> CheckInRead:
    follow_up = await service.get(db, follow_up_id)
    message = await service.send_check_in(
        db,
        follow_up,
        agent_id=principal.identity.id,
        body=body.body if body else None,
        actor=principal.actor,
    )
    return CheckInRead(follow_up=_read(follow_up), message_id=message.id, body=message.body_text)
