"""Pages of follow-ups: the due queue of the workspace, one follow-up, planning, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from servicecycle.auth.deps import Db, PageAdmin, Principal, page_access
from servicecycle.auth.flash import flash
from servicecycle.auth.models import Role
from servicecycle.customers import service as customers
from servicecycle.followups import service
from servicecycle.followups.models import KINDS, OUTCOMES, FollowUp
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError, ValidationFailed
from servicecycle.tickets import service as tickets
from servicecycle.tickets import workspace
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

# Following up is agents' (and admins') work, like the inbox.
PageAgent = Annotated[Principal, Depends(page_access(Role.admin, Role.agent))]

TABS = {"mine": "Mine", "all": "All", "nobody": "Nobody's"}
KIND_NAMES = {"check_in": "Check-in", "recovery": "Recovery", "other": "Other"}
OUTCOME_NAMES = {
    "resolved": "Resolved",
    "no_answer": "No answer",
    "escalated": "Escalated",
    "other": "Other",
}
PAGE_SIZE = 50


def _problem(exc: ServiceError) -> str:
    """The refusal as one line: the follow-up templates show ``error`` alone, with no
    per-field list, so the fields' reasons go into it (``web.forms.problem`` gives a dict
    for templates that list ``fields``)."""
    return exc.message + "".join(f" — {name}: {text}" for name, text in exc.fields.items())


def _zone() -> Any:
    return service.end_of_today(clock.now()).tzinfo


def _parse_local(field: str, value: str) -> datetime:
    """A ``datetime-local`` value, read in the desk's time zone."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(
            f"Invalid {field}", fields={field: "a date and time, e.g. 2026-12-09 09:00"}
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone())
    return moment.astimezone(UTC)


def _local_input(moment: datetime) -> str:
    return moment.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M")


async def _agents(db: Db) -> list[Any]:
    return await workspace.agents(db)


async def _rows(db: Db, items: list[FollowUp]) -> list[dict[str, Any]]:
    names, owners = await service.people(db, items)
    return [
        {
            "f": f,
            "customer": names.get(f.customer_id, f"#{f.customer_id}"),
            "owner": owners.get(f.owner_id) if f.owner_id else None,
        }
        for f in items
    ]


def _context() -> dict[str, Any]:
    return {
        "now": clock.now(),
        "kind_names": KIND_NAMES,
        "outcome_names": OUTCOME_NAMES,
        "zone": str(_zone()),
    }


# -- the queue ------------------------------------------------------------------------------


@router.get("/follow-ups")
async def queue(
    request: Request,
    principal: PageAgent,
    db: Db,
    tab: Annotated[str, Query(max_length=10)] = "mine",
    overdue: Annotated[str, Query(max_length=5)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Open follow-ups, soonest first: mine, everyone's, or nobody's yet."""
    if tab not in TABS:
        tab = "mine"
    me = principal.identity.id
    owner: int | str | None = {"mine": me, "all": None, "nobody": "none"}[tab]
    flt = service.Filter(owner=owner, overdue=bool(overdue))
    page = await service.list_follow_ups(db, flt, limit=PAGE_SIZE, cursor=cursor)
    mine, everyone = await service.counts(db, owner_id=me), await service.counts(db)
    unowned = await service.list_follow_ups(db, service.Filter(owner="none"), limit=1)
    older = None
    if page.next_cursor:
        older = "/follow-ups?" + urlencode(
            {"tab": tab, "overdue": overdue, "cursor": page.next_cursor}
        )
    return render(
        request,
        "followups/queue.html",
        {
            "tab": tab,
            "tabs": TABS,
            "overdue_only": bool(overdue),
            "counts": {"mine": mine, "all": everyone},
            "has_unowned": bool(unowned.items),
            "rows": await _rows(db, page.items),
            "older": older,
            "paged": cursor is not None,
            "is_admin": principal.role == Role.admin,
            **_context(),
        },
    )


# -- plan one -------------------------------------------------------------------------------


async def _new_page(
    request: Request,
    db: Db,
    principal: Principal,
    *,
    ticket_id: int | None,
    customer_id: int | None,
    draft: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    ticket = customer = None
    if ticket_id is not None:
        ticket = await tickets.get_ticket(db, ticket_id)
        customer_id = ticket.requester_id
    if customer_id is not None:
        customer = await customers.get_customer(db, customer_id)
    return render(
        request,
        "followups/new.html",
        {
            "ticket": ticket,
            "customer": customer,
            "agents": await _agents(db),
            "kinds": KINDS,
            "draft": draft,
            "error": error,
            "me": principal.identity.id,
            **_context(),
        },
        status_code=status_code,
    )


@router.get("/follow-ups/new")
async def new(
    request: Request,
    principal: PageAgent,
    db: Db,
    ticket: Annotated[int | None, Query()] = None,
    customer: Annotated[int | None, Query()] = None,
) -> Response:
    """The form to plan a follow-up about a ticket (``?ticket=``) or a customer."""
    if ticket is None and customer is None:
        raise ValidationFailed(
            "Open this from a ticket or a customer", fields={"ticket": "required"}
        )
    due = clock.now() + timedelta(days=3)
    draft = {
        "owner_id": str(principal.identity.id),
        "kind": "check_in",
        "reason": "",
        "due": _local_input(due.replace(minute=0, second=0, microsecond=0)),
    }
    return await _new_page(
        request, db, principal, ticket_id=ticket, customer_id=customer, draft=draft
    )


@router.post("/follow-ups/new")
async def create(
    request: Request,
    principal: PageAgent,
    db: Db,
    ticket_id: Annotated[str, Form(max_length=20)] = "",
    customer_id: Annotated[str, Form(max_length=20)] = "",
    owner_id: Annotated[str, Form(max_length=20)] = "",
    kind: Annotated[str, Form(max_length=20)] = "check_in",
    reason: Annotated[str, Form(max_length=2000)] = "",
    due: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    ticket = int(ticket_id) if ticket_id.isdigit() else None
    customer = int(customer_id) if customer_id.isdigit() else None
    try:
        async with db.begin_nested():
            follow_up = await service.create(
                db,
                ticket_id=ticket,
                customer_id=None if ticket else customer,
                owner_id=int(owner_id) if owner_id.isdigit() else None,
                kind=kind,
                reason=reason,
                due_at=_parse_local("due", due),
                actor=principal.actor,
            )
    except ServiceError as exc:
        draft = {"owner_id": owner_id, "kind": kind, "reason": reason, "due": due}
        return await _new_page(
            request,
            db,
            principal,
            ticket_id=ticket,
            customer_id=customer,
            draft=draft,
            error=_problem(exc),
            status_code=exc.status_code,
        )
    flash(principal, "Follow-up planned.")
    return RedirectResponse(f"/follow-ups/{follow_up.id}", status_code=303)


# -- one follow-up --------------------------------------------------------------------------


async def _detail(
    request: Request,
    db: Db,
    principal: Principal,
    follow_up: FollowUp,
    *,
    error: str | None = None,
    error_at: str | None = None,
    draft: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    [row] = await _rows(db, [follow_up])
    ticket = await tickets.get_ticket(db, follow_up.ticket_id) if follow_up.ticket_id else None
    preview, preview_problem = None, None
    if follow_up.state == "open":
        try:
            preview = await service.check_in_text(db, follow_up, agent_id=principal.identity.id)
        except ServiceError as exc:
            preview_problem = exc.message
    return render(
        request,
        "followups/follow_up.html",
        {
            "row": row,
            "f": follow_up,
            "ticket": ticket,
            "preview": (draft or {}).get("body", preview),
            "preview_problem": preview_problem,
            "agents": await _agents(db),
            "outcomes": OUTCOMES,
            "due_input": _local_input(follow_up.due_at),
            "error": error,
            "error_at": error_at,
            "draft": draft or {},
            **_context(),
        },
        status_code=status_code,
    )


@router.get("/follow-ups/{follow_up_id:int}")
async def detail(request: Request, follow_up_id: int, principal: PageAgent, db: Db) -> Response:
    follow_up = await service.get(db, follow_up_id)
    return await _detail(request, db, principal, follow_up)


async def _act(
    request: Request,
    db: Db,
    principal: Principal,
    follow_up_id: int,
    *,
    where: str,
    done: str,
    draft: dict[str, str],
    action: Any,
) -> Response:
    """Run one change in a savepoint; on a refusal, show the page again with the problem."""
    follow_up = await service.get(db, follow_up_id)
    try:
        async with db.begin_nested():
            await action(follow_up)
    except NotFound:
        raise
    except ServiceError as exc:
        await db.refresh(follow_up)
        return await _detail(
            request,
            db,
            principal,
            follow_up,
            error=_problem(exc),
            error_at=where,
            draft=draft,
            status_code=exc.status_code,
        )
    flash(principal, done)
    return RedirectResponse(f"/follow-ups/{follow_up_id}", status_code=303)


@router.post("/follow-ups/{follow_up_id:int}/check-in")
async def check_in(
    request: Request,
    follow_up_id: int,
    principal: PageAgent,
    db: Db,
    body: Annotated[str, Form(max_length=20000)] = "",
) -> Response:
    """Send the check-in as shown (and perhaps edited) in the preview."""

    async def send(follow_up: FollowUp) -> None:
        await service.send_check_in(
            db, follow_up, agent_id=principal.identity.id, body=body, actor=principal.actor
        )

    return await _act(
        request,
        db,
        principal,
        follow_up_id,
        where="check-in",
        done="Check-in sent on the ticket.",
        draft={"body": body},
        action=send,
    )


@router.post("/follow-ups/{follow_up_id:int}/done")
async def complete(
    request: Request,
    follow_up_id: int,
    principal: PageAgent,
    db: Db,
    outcome: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    async def finish(follow_up: FollowUp) -> None:
        await service.complete(
            db, follow_up, outcome=outcome or None, note=note, actor=principal.actor
        )

    return await _act(
        request,
        db,
        principal,
        follow_up_id,
        where="done",
        done="Follow-up done: the loop is closed.",
        draft={"outcome": outcome, "note": note},
        action=finish,
    )


@router.post("/follow-ups/{follow_up_id:int}/reschedule")
async def reschedule(
    request: Request,
    follow_up_id: int,
    principal: PageAgent,
    db: Db,
    due: Annotated[str, Form(max_length=40)] = "",
    owner_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    async def move(follow_up: FollowUp) -> None:
        changes: dict[str, Any] = {"owner_id": int(owner_id) if owner_id.isdigit() else None}
        changes["due_at"] = _parse_local("due", due)
        await service.update(db, follow_up, changes=changes, actor=principal.actor)

    return await _act(
        request,
        db,
        principal,
        follow_up_id,
        where="reschedule",
        done="Follow-up rescheduled.",
        draft={"due": due, "owner_id": owner_id},
        action=move,
    )


@router.post("/follow-ups/{follow_up_id:int}/cancel")
async def cancel(
    request: Request,
    follow_up_id: int,
    principal: PageAgent,
    db: Db,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    async def drop(follow_up: FollowUp) -> None:
        await service.cancel(db, follow_up, note=note, actor=principal.actor)

    return await _act(
        request,
        db,
        principal,
        follow_up_id,
        where="cancel",
        done="Follow-up cancelled.",
        draft={},
        action=drop,
    )


# -- settings (admins) ----------------------------------------------------------------------


async def _settings_page(
    request: Request,
    db: Db,
    *,
    draft: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await service.read_settings(db)
    now = clock.now()
    return render(
        request,
        "followups/settings.html",
        {
            "recovery_hours": (draft or {}).get("recovery_hours", str(row.recovery_hours)),
            "template": (draft or {}).get("check_in_template", row.check_in_template),
            "default_template": service.DEFAULT_CHECK_IN,
            "reports": [
                ("Last 30 days", await service.recovery_report(db, since=now - timedelta(days=30))),
                ("All time", await service.recovery_report(db)),
            ],
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/follow-ups/settings")
async def settings(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _settings_page(request, db)


@router.post("/follow-ups/settings")
async def save_settings(
    request: Request,
    principal: PageAdmin,
    db: Db,
    recovery_hours: Annotated[str, Form(max_length=10)] = "",
    check_in_template: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    try:
        if not recovery_hours.strip().isdigit():
            raise ValidationFailed(
                "Invalid recovery time", fields={"recovery_hours": "from 1 to 720 hours"}
            )
        async with db.begin_nested():
            await service.save_settings(
                db,
                recovery_hours=int(recovery_hours),
                check_in_template=check_in_template,
                actor=principal.actor,
            )
    except ServiceError as exc:
        draft = {"recovery_hours": recovery_hours, "check_in_template": check_in_template}
        return await _settings_page(
            request, db, draft=draft, error=_problem(exc), status_code=exc.status_code
        )
    flash(principal, "Follow-up settings saved.")
    return RedirectResponse("/follow-ups/settings", status_code=303)
