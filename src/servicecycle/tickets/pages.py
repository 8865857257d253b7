"""The agent workspace: the inbox of views and the ticket page (thread, reply, controls)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from servicecycle.auth import service as auth
from servicecycle.auth.deps import Db, Principal, page_access
from servicecycle.auth.models import Role
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError
from servicecycle.tickets import service, workspace
from servicecycle.tickets.models import CHANNELS, PRIORITIES, STATUSES, Ticket
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

# Working tickets is for agents and admins; analysts read customers and reports.
PageAgent = Annotated[Principal, Depends(page_access(Role.admin, Role.agent))]

DEFAULT_VIEW = "my-open"
SUBMIT_AS = ("open", "pending", "on-hold", "solved")
# htmx stops polling when a poll is answered with this status
STOP_POLLING = 286


def _problem(exc: ServiceError) -> str:
    return exc.message + "".join(f" — {name}: {text}" for name, text in exc.fields.items())


def _flash(principal: Principal, text: str) -> None:
    if principal.web_session is not None:
        auth.add_flash(principal.web_session, "success", text)


def _back(ticket_id: int) -> Response:
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


# -- inbox ----------------------------------------------------------------------------------


@router.get("/inbox")
async def inbox(
    request: Request,
    principal: PageAgent,
    db: Db,
    view: str = DEFAULT_VIEW,
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    assignee: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=80)] = None,
    priority: Annotated[str | None, Query(max_length=20)] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    me = principal.identity.id
    statuses = [s for s in status or [] if s]
    single = {
        "assignee": assignee or None,
        "tag": (tag or "").strip() or None,
        "priority": priority or None,
        "channel": channel or None,
    }
    counts = await service.count_views(db, user_id=me)
    rows: list[workspace.Row] = []
    next_cursor, error, code = None, None, 200
    try:
        flt = service.refine(
            service.view_filter(view, user_id=me),
            statuses=statuses,
            me=me,
            team_id=None,
            requester_id=None,
            **single,
        )
        page = await service.list_tickets(db, flt, cursor=cursor)
        rows, next_cursor = await workspace.inbox_rows(db, page.items), page.next_cursor
    except ServiceError as exc:
        error, code = _problem(exc), exc.status_code
    query = [("view", view)] + [("status", s) for s in statuses]
    query += [(key, value) for key, value in single.items() if value]
    return render(
        request,
        "tickets/inbox.html",
        {
            "views": [(key, name, counts[key]) for key, (name, _) in service.BUILTIN_VIEWS.items()],
            "view": view,
            "view_name": service.BUILTIN_VIEWS.get(view, (view, None))[0],
            "rows": rows,
            "chosen": {"status": statuses, **single},
            "filtered": len(query) > 1,
            "older": f"/inbox?{urlencode([*query, ('cursor', next_cursor)])}"
            if next_cursor
            else None,
            "paged": cursor is not None,
            "first_page": f"/inbox?{urlencode(query)}",
            "agents": await workspace.agents(db),
            "statuses": STATUSES,
            "priorities": PRIORITIES,
            "channels": CHANNELS,
            "error": error,
            "now": clock.now(),
        },
        status_code=code,
    )


# -- one ticket -----------------------------------------------------------------------------


async def _ticket_page(
    request: Request,
    db: Db,
    ticket: Ticket,
    *,
    error: str | None = None,
    error_at: str = "",
    draft: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    if error is not None:
        # the refused change's savepoint was rolled back: show what is really stored
        ticket = await workspace.reload(db, ticket)
    return render(
        request,
        "tickets/ticket.html",
        {
            "v": await workspace.ticket_view(db, ticket),
            "t": ticket,
            "error": error,
            "error_at": error_at,
            "draft": draft or {"body": "", "kind": "reply", "status": ""},
            "submit_as": SUBMIT_AS,
            "priorities": PRIORITIES,
            "now": clock.now(),
        },
        status_code=status_code,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, ticket_id: int, principal: PageAgent, db: Db) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    return await _ticket_page(request, db, ticket)


@router.get("/tickets/{ticket_id}/version")
async def ticket_version(
    request: Request, ticket_id: int, principal: PageAgent, db: Db, seen: int = 0
) -> Response:
    """The polled fragment: the ticket's current version, and a notice once it moved on."""
    ticket = await service.get_ticket(db, ticket_id)
    changed = seen != ticket.version
    return render(
        request,
        "tickets/_version.html",
        {"t": ticket, "changed": changed},
        status_code=STOP_POLLING if changed else 200,
        # a poll must not consume the flash messages meant for the next full page
        in_transaction=False,
    )


@router.post("/tickets/{ticket_id}/messages")
async def add_message(
    request: Request,
    ticket_id: int,
    principal: PageAgent,
    db: Db,
    body: Annotated[str, Form(max_length=200_000)] = "",
    kind: Annotated[str, Form(max_length=10)] = "reply",
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    public = kind != "note"
    try:
        async with db.begin_nested():
            await service.add_message(
                db,
                ticket,
                public=public,
                author_type="agent",
                author_user_id=principal.identity.id,
                body_text=body,
                status=status or None,
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _ticket_page(
            request,
            db,
            ticket,
            error=_problem(exc),
            error_at="editor",
            draft={"body": body, "kind": "reply" if public else "note", "status": status},
            status_code=exc.status_code,
        )
    _flash(principal, "Reply sent." if public else "Note added.")
    return _back(ticket.id)


@router.post("/tickets/{ticket_id}/take")
async def take(request: Request, ticket_id: int, principal: PageAgent, db: Db) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    try:
        async with db.begin_nested():
            await service.assign(
                db,
                ticket,
                assignee_id=principal.identity.id,
                team_id=ticket.team_id,
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _ticket_page(
            request, db, ticket, error=_problem(exc), status_code=exc.status_code
        )
    _flash(principal, f"Ticket #{ticket.id} is assigned to you.")
    return _back(ticket.id)


def _changes(ticket: Ticket, form: dict[str, str]) -> dict[str, Any]:
    """Only the controls whose value differs: a closed ticket refuses any other change."""
    wanted: dict[str, Any] = {
        "status": form["status"] or ticket.status,
        "priority": form["priority"] or ticket.priority,
        "assignee_id": int(form["assignee_id"]) if form["assignee_id"].isdigit() else None,
        "team_id": int(form["team_id"]) if form["team_id"].isdigit() else None,
        "tags": sorted({t.lower() for t in form["tags"].replace(",", " ").split()}),
    }
    return {key: value for key, value in wanted.items() if getattr(ticket, key) != value}


@router.post("/tickets/{ticket_id}")
async def update_ticket(
    request: Request,
    ticket_id: int,
    principal: PageAgent,
    db: Db,
    version: Annotated[int | None, Form()] = None,
    status: Annotated[str, Form(max_length=20)] = "",
    priority: Annotated[str, Form(max_length=20)] = "",
    assignee_id: Annotated[str, Form(max_length=20)] = "",
    team_id: Annotated[str, Form(max_length=20)] = "",
    tags: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    form = {
        "status": status,
        "priority": priority,
        "assignee_id": assignee_id,
        "team_id": team_id,
        "tags": tags,
    }
    changes = _changes(ticket, form)
    if not changes:
        return _back(ticket.id)
    try:
        async with db.begin_nested():
            await service.update_ticket(
                db, ticket, expected_version=version, changes=changes, actor=principal.actor
            )
    except ServiceError as exc:
        return await _ticket_page(
            request,
            db,
            ticket,
            error=_problem(exc),
            error_at="controls",
            status_code=exc.status_code,
        )
    _flash(principal, f"Ticket #{ticket.id} updated.")
    return _back(ticket.id)
