"""The agent workspace: the inbox of views and the ticket page (thread, reply, controls)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from servicecycle.auth.deps import Db, Principal, page_access, runtime
from servicecycle.auth.flash import flash
from servicecycle.auth.models import Role
from servicecycle.events import service as events
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError, ValidationFailed
from servicecycle.tickets import attachments, custom_fields, service, views, workspace
from servicecycle.tickets.content import fold_quoted
from servicecycle.tickets.models import (
    CHANNELS,
    PRIORITIES,
    STATUSES,
    Attachment,
    CustomField,
    Message,
    Ticket,
)
from servicecycle.tickets.storage import Storage, storage_for
from servicecycle.web.templating import render, templates

router = APIRouter(include_in_schema=False)
# the ticket page folds each message's quoted history away (the stored body stays whole)
templates.env.globals["fold_quoted"] = fold_quoted

# Working tickets is for agents and admins; analysts read customers and reports.
PageAgent = Annotated[Principal, Depends(page_access(Role.admin, Role.agent))]

DEFAULT_VIEW = "my-open"
SUBMIT_AS = ("open", "pending", "on-hold", "solved")
SORTS = {"sla": "SLA due first"}
# htmx stops polling when a poll is answered with this status
STOP_POLLING = 286


def _problem(exc: ServiceError, names: dict[str, str] | None = None) -> str:
    """The message and each field's complaint; ``names`` gives fields their labels."""
    return exc.message + "".join(
        f" — {(names or {}).get(name, name)}: {text}" for name, text in exc.fields.items()
    )


def _back(ticket_id: int) -> Response:
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


def _sources(request: Request) -> workspace.Sources:
    """What the app lent the workspace from higher domains (SLA clocks, macros)."""
    found = getattr(request.app.state, "workspace", None)
    return found if isinstance(found, workspace.Sources) else workspace.NO_SOURCES


def _is_admin(principal: Principal) -> bool:
    return principal.role == Role.admin


# -- inbox ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxQuery:
    """A list's view and filters, as the address bar and the save form carry them."""

    view: str = DEFAULT_VIEW
    statuses: tuple[str, ...] = ()
    assignee: str | None = None
    tag: str | None = None
    priority: str | None = None
    channel: str | None = None
    sla: str | None = None
    sort: str | None = None

    @classmethod
    def of(cls, view: str, statuses: list[str] | None, **single: str | None) -> InboxQuery:
        cleaned = {key: (value or "").strip() or None for key, value in single.items()}
        if cleaned.get("sla") not in workspace.SLA_FILTERS:
            cleaned["sla"] = None
        if cleaned.get("sort") not in SORTS:
            cleaned["sort"] = None
        return cls(
            view=view or DEFAULT_VIEW, statuses=tuple(s for s in statuses or [] if s), **cleaned
        )

    def pairs(self) -> list[tuple[str, str]]:
        found = [("view", self.view)] + [("status", s) for s in self.statuses]
        for key in ("assignee", "tag", "priority", "channel", "sla", "sort"):
            value = getattr(self, key)
            if value:
                found.append((key, value))
        return found

    def refine(self, flt: service.TicketFilter, *, me: int) -> service.TicketFilter:
        return service.refine(
            flt,
            statuses=list(self.statuses),
            assignee=self.assignee,
            me=me,
            team_id=None,
            tag=self.tag,
            priority=self.priority,
            channel=self.channel,
            requester_id=None,
        )


async def _view(db: Db, view: str, *, user_id: int) -> tuple[str, service.TicketFilter]:
    """A built-in view by key, or a saved one as ``saved:<id>`` (the API's keys)."""
    if view.startswith("saved:") and view[6:].isdigit():
        saved = await views.get_view(db, int(view[6:]), user_id=user_id)
        return saved.name, views.filter_from(saved.filters)
    flt = service.view_filter(view, user_id=user_id)
    return service.BUILTIN_VIEWS[view][0], flt


async def _inbox_page(
    request: Request,
    principal: Principal,
    db: Db,
    q: InboxQuery,
    *,
    cursor: str | None = None,
    page: int = 1,
    error: str | None = None,
    error_at: str = "",
    save_name: str = "",
    status_code: int = 200,
) -> Response:
    me, now = principal.identity.id, clock.now()
    sla = _sources(request).sla
    counts = await service.count_views(db, user_id=me)
    rows: list[workspace.Row] = []
    older, view_name = None, q.view
    try:
        view_name, flt = await _view(db, q.view, user_id=me)
        flt = q.refine(flt, me=me)
        if sla is not None and (q.sla or q.sort):
            found, more, clocks = await workspace.by_sla(
                db, flt, sla, due_first=q.sort == "sla", only=q.sla, now=now, page=page
            )
            rows = await workspace.inbox_rows(db, found, clocks=clocks, now=now)
            older = f"/inbox?{urlencode([*q.pairs(), ('page', page + 1)])}" if more else None
        else:
            listed = await service.list_tickets(db, flt, cursor=cursor)
            rows = await workspace.inbox_rows(db, listed.items, sla=sla, now=now)
            if listed.next_cursor:
                older = f"/inbox?{urlencode([*q.pairs(), ('cursor', listed.next_cursor)])}"
    except ServiceError as exc:
        if error is None:
            error, status_code = _problem(exc), exc.status_code
    return render(
        request,
        "tickets/inbox.html",
        {
            "views": [
                (key, name, service.shown_count(counts[key]))
                for key, (name, _) in service.BUILTIN_VIEWS.items()
            ],
            "saved": await workspace.saved_views(db, user_id=me, is_admin=_is_admin(principal)),
            "view": q.view,
            "view_name": view_name,
            "rows": rows,
            "q": q,
            "chosen": {"status": list(q.statuses), "assignee": q.assignee},
            "filtered": len(q.pairs()) > 1,
            "older": older,
            "paged": cursor is not None or page > 1,
            "first_page": f"/inbox?{urlencode(q.pairs())}",
            "agents": await workspace.agents(db),
            "statuses": STATUSES,
            "priorities": PRIORITIES,
            "channels": CHANNELS,
            "sla_on": sla is not None,
            "sla_filters": workspace.SLA_FILTERS,
            "sorts": SORTS,
            "is_admin": _is_admin(principal),
            "error": error,
            "error_at": error_at,
            "save_name": save_name,
            "now": now,
        },
        status_code=status_code,
    )


@router.get("/inbox")
async def inbox(
    request: Request,
    principal: PageAgent,
    db: Db,
    view: Annotated[str, Query(max_length=40)] = DEFAULT_VIEW,
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    assignee: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=80)] = None,
    priority: Annotated[str | None, Query(max_length=20)] = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    sla: Annotated[str | None, Query(max_length=20)] = None,
    sort: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    q = InboxQuery.of(
        view,
        status,
        assignee=assignee,
        tag=tag,
        priority=priority,
        channel=channel,
        sla=sla,
        sort=sort,
    )
    return await _inbox_page(request, principal, db, q, cursor=cursor, page=page)


@router.post("/inbox/views")
async def save_view(
    request: Request,
    principal: PageAgent,
    db: Db,
    name: Annotated[str, Form(max_length=120)] = "",
    shared: Annotated[str, Form(max_length=10)] = "",
    view: Annotated[str, Form(max_length=40)] = DEFAULT_VIEW,
    status: Annotated[list[str] | None, Form(max_length=20)] = None,
    assignee: Annotated[str, Form(max_length=20)] = "",
    tag: Annotated[str, Form(max_length=80)] = "",
    priority: Annotated[str, Form(max_length=20)] = "",
    channel: Annotated[str, Form(max_length=20)] = "",
    sla: Annotated[str, Form(max_length=20)] = "",
    sort: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Save the list's current view and filters under a name (the SLA narrowing and order
    are not part of a saved filter)."""
    q = InboxQuery.of(
        view,
        status,
        assignee=assignee,
        tag=tag,
        priority=priority,
        channel=channel,
        sla=sla,
        sort=sort,
    )
    me = principal.identity.id
    try:
        async with db.begin_nested():
            _, flt = await _view(db, q.view, user_id=me)
            saved = await views.create_view(
                db,
                name=name,
                filters=views.filter_to_json(q.refine(flt, me=me)),
                shared=bool(shared),
                owner_id=me,
                is_admin=_is_admin(principal),
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _inbox_page(
            request,
            principal,
            db,
            q,
            error=_problem(exc),
            error_at="save",
            save_name=name,
            status_code=exc.status_code,
        )
    flash(principal, f"View “{saved.name}” saved.")
    return RedirectResponse(f"/inbox?{urlencode({'view': f'saved:{saved.id}'})}", status_code=303)


@router.post("/inbox/views/{view_id}/delete")
async def delete_view(request: Request, view_id: int, principal: PageAgent, db: Db) -> Response:
    try:
        async with db.begin_nested():
            saved = await views.get_view(db, view_id, user_id=principal.identity.id)
            name = saved.name
            await views.delete_view(db, saved, is_admin=_is_admin(principal), actor=principal.actor)
    except ServiceError as exc:
        return await _inbox_page(
            request, principal, db, InboxQuery(), error=_problem(exc), status_code=exc.status_code
        )
    flash(principal, f"View “{name}” deleted.")
    return RedirectResponse("/inbox", status_code=303)


# -- one ticket -----------------------------------------------------------------------------


def _field_errors(exc: ServiceError | None) -> dict[str, str]:
    """Messages about custom fields (``custom.<key>``), to mark those fields."""
    if exc is None:
        return {}
    return {k[7:]: v for k, v in exc.fields.items() if k.startswith("custom.")}


def _download_url(attachment: Attachment) -> str:
    """The download route that checks who is asking (tickets.api), also for inline images."""
    return f"/api/v1/attachments/{attachment.id}"


async def _ticket_page(
    request: Request,
    db: Db,
    principal: Principal,
    ticket: Ticket,
    *,
    problem: ServiceError | None = None,
    error_at: str = "",
    draft: dict[str, str] | None = None,
    controls: dict[str, Any] | None = None,
    files_lost: bool = False,
) -> Response:
    if problem is not None:
        # the refused change's savepoint was rolled back: show what is really stored
        ticket = await workspace.reload(db, ticket)
    now = clock.now()
    view = await workspace.ticket_view(
        db, ticket, user_id=principal.identity.id, now=now, sources=_sources(request)
    )
    # a mail the desk gave up sending (the channels record it on the ticket)
    failed_mail = (
        await events.query(
            db, subject_type="ticket", subject_id=ticket.id, kinds=["mail.failed"], limit=10
        )
    ).items
    error = None
    if problem is not None:
        labels = {f"custom.{f.key}": f.label for f in view.fields}
        error = _problem(problem, labels) + (" Choose the files again." if files_lost else "")
    # each message's cid: images point at that message's own files (never another's)
    shown = {
        post.message.id: attachments.shown(post.message.body_html, post.files, _download_url)
        for post in view.posts
    }
    return render(
        request,
        "tickets/ticket.html",
        {
            "v": view,
            "t": ticket,
            "shown": shown,
            "error": error,
            "error_at": error_at,
            "field_errors": _field_errors(problem),
            "draft": {"body": "", "kind": "reply", "status": "", "macro_id": "", **(draft or {})},
            "controls": controls or {},
            "failed_mail": failed_mail,
            "submit_as": SUBMIT_AS,
            "priorities": PRIORITIES,
            "max_file_bytes": runtime(request).settings.max_attachment_bytes,
            # a larger request is refused before it is read: the page could not keep the text
            "max_request_bytes": runtime(request).settings.max_request_bytes,
            "now": now,
        },
        status_code=problem.status_code if problem is not None else 200,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, ticket_id: int, principal: PageAgent, db: Db) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    return await _ticket_page(request, db, principal, ticket)


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


@router.post("/tickets/{ticket_id}/presence")
async def presence(
    request: Request,
    ticket_id: int,
    principal: PageAgent,
    db: Db,
    replying: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Polled while the page is open: I am here (and typing?); who else is?"""
    ticket = await service.get_ticket(db, ticket_id)
    others = await views.looking(db, ticket, user_id=principal.identity.id, replying=bool(replying))
    return render(
        request,
        "tickets/_presence.html",
        {"lookers": await workspace.lookers(db, others)},
        in_transaction=False,
    )


@router.get("/tickets/{ticket_id}/macros/{macro_id}")
async def macro_preview(
    request: Request, ticket_id: int, macro_id: int, principal: PageAgent, db: Db
) -> Response:
    """A macro's reply filled in for this ticket, for the editor to show and edit."""
    macros = _sources(request).macros
    if macros is None:
        raise NotFound("Macros are not available")
    ticket = await service.get_ticket(db, ticket_id)
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    shown = await macros.preview(db, macro, ticket, agent_id=principal.identity.id)
    return JSONResponse({"body": shown.body, "kind": "reply" if shown.public else "note"})


def _storage(request: Request) -> Storage:
    settings = runtime(request).settings
    return storage_for(settings.attachment_storage, settings.data_dir)


async def _upload(
    request: Request, db: Db, principal: Principal, files: list[UploadFile]
) -> list[int]:
    """Store the chosen files; a refused one is named in the error, and nothing is kept."""
    limit = runtime(request).settings.max_attachment_bytes
    ids = []
    for upload in files:
        # one byte more than the limit tells an oversized file without reading all of it
        data = await upload.read(limit + 1)
        try:
            stored = await attachments.upload(
                db,
                _storage(request),
                filename=upload.filename or "",
                content_type=upload.content_type,
                data=data,
                max_bytes=limit,
                user_id=principal.identity.id,
                actor=principal.actor,
            )
        except ServiceError as exc:
            raise type(exc)(
                f"{upload.filename}: {exc.message}", fields=exc.fields, extra=exc.extra
            ) from exc
        ids.append(stored.id)
    return ids


async def _apply_macro(
    request: Request,
    db: Db,
    principal: Principal,
    ticket: Ticket,
    *,
    macro_id: int,
    body: str,
    status: str,
    file_ids: list[int],
) -> str:
    """Send the edited reply with the macro's actions, then its files and status."""
    macros = _sources(request).macros
    if macros is None:
        raise NotFound("Macros are not available")
    me = principal.identity.id
    macro = await macros.get_macro(db, macro_id, user_id=me)
    message: Message | None = await macros.apply_macro(
        db, macro, ticket, agent_id=me, body=body, actor=principal.actor
    )
    if file_ids:
        if message is None:
            raise ValidationFailed(
                "Files need a message: write the reply they go with", fields={"body": "empty"}
            )
        await attachments.attach(db, message, file_ids, user_id=me, actor=principal.actor)
    if status and status != ticket.status:
        await service.update_ticket(
            db, ticket, expected_version=None, changes={"status": status}, actor=principal.actor
        )
    return f"Macro “{macro.name}” applied."


@router.post("/tickets/{ticket_id}/messages")
async def add_message(
    request: Request,
    ticket_id: int,
    principal: PageAgent,
    db: Db,
    body: Annotated[str, Form(max_length=200_000)] = "",
    kind: Annotated[str, Form(max_length=10)] = "reply",
    status: Annotated[str, Form(max_length=20)] = "",
    macro_id: Annotated[str, Form(max_length=20)] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    ticket = await service.get_ticket(db, ticket_id)
    public = kind != "note"
    # a file input left empty still sends one nameless part
    chosen = [f for f in files or [] if f.filename]
    try:
        async with db.begin_nested():
            file_ids = await _upload(request, db, principal, chosen)
            if macro_id.isdigit():
                done = await _apply_macro(
                    request,
                    db,
                    principal,
                    ticket,
                    macro_id=int(macro_id),
                    body=body,
                    status=status,
                    file_ids=file_ids,
                )
            else:
                await service.add_message(
                    db,
                    ticket,
                    public=public,
                    author_type="agent",
                    author_user_id=principal.identity.id,
                    body_text=body,
                    status=status or None,
                    attachment_ids=file_ids,
                    actor=principal.actor,
                )
                done = "Reply sent." if public else "Note added."
    except ServiceError as exc:
        return await _ticket_page(
            request,
            db,
            principal,
            ticket,
            problem=exc,
            error_at="editor",
            draft={
                "body": body,
                "kind": "reply" if public else "note",
                "status": status,
                "macro_id": macro_id,
            },
            files_lost=bool(chosen),
        )
    flash(principal, done)
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
        return await _ticket_page(request, db, principal, ticket, problem=exc)
    flash(principal, f"Ticket #{ticket.id} is assigned to you.")
    return _back(ticket.id)


def _field_value(field: CustomField, raw: str) -> Any:
    """A submitted field as the service takes it; ``None`` clears it. A number that does not
    parse is passed on as typed, so the service refuses it naming the field."""
    if field.kind == "checkbox":
        return True if raw else None
    text = raw.strip()
    if not text:
        return None
    if field.kind == "number":
        try:
            number: float = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return text
        return number if math.isfinite(number) else text
    return text


def _changes(ticket: Ticket, form: dict[str, str], custom: dict[str, Any]) -> dict[str, Any]:
    """Only the controls whose value differs: a closed ticket refuses any other change."""
    wanted: dict[str, Any] = {
        "status": form["status"] or ticket.status,
        "priority": form["priority"] or ticket.priority,
        "assignee_id": int(form["assignee_id"]) if form["assignee_id"].isdigit() else None,
        "team_id": int(form["team_id"]) if form["team_id"].isdigit() else None,
        "tags": sorted({t.lower() for t in form["tags"].replace(",", " ").split()}),
    }
    changes = {key: value for key, value in wanted.items() if getattr(ticket, key) != value}
    edited = {key: value for key, value in custom.items() if ticket.custom.get(key) != value}
    if edited:
        changes["custom"] = edited
    return changes


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
    fields: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """The side panel's controls and custom fields, saved together: solving may need the
    required fields the same form fills in."""
    ticket = await service.get_ticket(db, ticket_id)
    form = {
        "status": status,
        "priority": priority,
        "assignee_id": assignee_id,
        "team_id": team_id,
        "tags": tags,
    }
    # only the fields the page showed (``fields``): an unticked checkbox sends nothing
    shown = set(fields.split())
    submitted = await request.form()
    typed: dict[str, str] = {}
    custom: dict[str, Any] = {}
    for field in await custom_fields.list_fields(db):
        if field.key in shown:
            raw = submitted.get(f"custom.{field.key}")
            typed[field.key] = raw if isinstance(raw, str) else ""
            custom[field.key] = _field_value(field, typed[field.key])
    changes = _changes(ticket, form, custom)
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
            principal,
            ticket,
            problem=exc,
            error_at="controls",
            controls={**form, "custom": typed},
        )
    flash(principal, f"Ticket #{ticket.id} updated.")
    return _back(ticket.id)
