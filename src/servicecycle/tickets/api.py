"""REST routes for tickets, their messages, views, and customer merges (which move tickets)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response, UploadFile, status
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.deps import ApiAdmin, ApiAgent, ApiUser, Db, runtime
from servicecycle.auth.models import Role
from servicecycle.customers import service as customers
from servicecycle.customers.api import read_many
from servicecycle.customers.schemas import CustomerRead
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import attachments, custom_fields, merging, service
from servicecycle.tickets import search as ticket_search
from servicecycle.tickets import views as ticket_views
from servicecycle.tickets.bulk import bulk_update
from servicecycle.tickets.models import Attachment, Message
from servicecycle.tickets.schemas import (
    AttachmentRead,
    BulkUpdate,
    Channel,
    CustomerHitRead,
    CustomerMerge,
    CustomFieldCreate,
    CustomFieldRead,
    CustomFieldUpdate,
    MessageCreate,
    MessageRead,
    Presence,
    Priority,
    SavedViewCreate,
    SearchResults,
    Status,
    TicketCreate,
    TicketHitRead,
    TicketLinkCreate,
    TicketMerge,
    TicketPage,
    TicketRead,
    TicketRelations,
    TicketSplit,
    TicketUpdate,
    ViewCount,
    ViewerRead,
)
from servicecycle.tickets.storage import Storage, storage_for
from servicecycle.web.concurrency import etag, parse_if_match

router = APIRouter(prefix="/api/v1", tags=["tickets"])


@router.post(
    "/tickets",
    response_model=TicketRead,
    status_code=status.HTTP_201_CREATED,
    summary="Open a ticket with its first message",
)
async def create_ticket(
    body: TicketCreate, principal: ApiAgent, db: Db, response: Response
) -> TicketRead:
    if body.requester.id is not None:
        requester = await customers.get_customer(db, body.requester.id)
    else:
        requester = await customers.find_or_create_by_email(
            db, email=str(body.requester.email), name=body.requester.name, actor=principal.actor
        )
    ticket, _ = await service.create_ticket(
        db,
        subject=body.subject,
        requester=requester,
        channel=body.channel,
        body_text=body.body,
        body_html=body.body_html,
        author=body.author,
        author_user_id=principal.identity.id,
        priority=body.priority,
        type=body.type,
        tags=body.tags,
        assignee_id=body.assignee_id,
        team_id=body.team_id,
        custom=body.custom,
        actor=principal.actor,
    )
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    response.headers["ETag"] = etag(ticket.version)
    return TicketRead.model_validate(ticket)


@router.get("/tickets", response_model=TicketPage, summary="Tickets by view or filters")
async def list_tickets(
    principal: ApiUser,
    db: Db,
    view: Annotated[
        str | None, Query(description="my-open, unassigned, all-open, recently-solved")
    ] = None,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    assignee: Annotated[str | None, Query(description="A user id, `me` or `none`")] = None,
    team_id: int | None = None,
    tag: str | None = None,
    priority: Priority | None = None,
    channel: Channel | None = None,
    requester_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: str | None = None,
) -> TicketPage:
    flt = await _view(db, view, user_id=principal.identity.id)
    flt = service.refine(
        flt,
        statuses=status_,
        assignee=assignee,
        me=principal.identity.id,
        team_id=team_id,
        tag=tag,
        priority=priority,
        channel=channel,
        requester_id=requester_id,
    )
    page = await service.list_tickets(db, flt, limit=limit, cursor=cursor)
    return TicketPage(
        items=[TicketRead.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/tickets/bulk",
    response_model=list[TicketRead],
    summary="Change many tickets in one transaction (all or none)",
)
async def bulk(body: BulkUpdate, principal: ApiAgent, db: Db) -> list[TicketRead]:
    updated = await bulk_update(
        db,
        body.ids,
        changes=body.changes.model_dump(exclude_unset=True),
        add_tags=body.add_tags,
        remove_tags=body.remove_tags,
        actor=principal.actor,
    )
    return [TicketRead.model_validate(t) for t in updated]


async def _view(db: AsyncSession, view: str | None, *, user_id: int) -> service.TicketFilter:
    if not view:
        return service.TicketFilter()
    if view.startswith("saved:") and view[6:].isdigit():
        saved = await ticket_views.get_view(db, int(view[6:]), user_id=user_id)
        return ticket_views.filter_from(saved.filters)
    return service.view_filter(view, user_id=user_id)


def _view_count(*, key: str, name: str, count: int, shared: bool = True) -> ViewCount:
    return ViewCount(
        key=key,
        name=name,
        count=min(count, service.COUNT_CAP),
        count_capped=count > service.COUNT_CAP,
        shared=shared,
    )


@router.get("/views", response_model=list[ViewCount], summary="Built-in views with live counts")
async def views(principal: ApiUser, db: Db) -> list[ViewCount]:
    me = principal.identity.id
    counts = await service.count_views(db, user_id=me)
    built_in = [
        _view_count(key=key, name=name, count=counts[key])
        for key, (name, _) in service.BUILTIN_VIEWS.items()
    ]
    saved = [
        _view_count(
            key=f"saved:{v.id}",
            name=v.name,
            shared=v.owner_id is None,
            count=await ticket_views.count(db, ticket_views.filter_from(v.filters)),
        )
        for v in await ticket_views.views_for(db, me)
    ]
    return built_in + saved


@router.post(
    "/views",
    response_model=ViewCount,
    status_code=status.HTTP_201_CREATED,
    summary="Save a filter as a view (personal, or shared by an admin)",
)
async def create_view(body: SavedViewCreate, principal: ApiAgent, db: Db) -> ViewCount:
    view = await ticket_views.create_view(
        db,
        name=body.name,
        filters=body.filters,
        shared=body.shared,
        owner_id=principal.identity.id,
        is_admin=principal.role == Role.admin,
        actor=principal.actor,
    )
    total = await ticket_views.count(db, ticket_views.filter_from(view.filters))
    return _view_count(
        key=f"saved:{view.id}", name=view.name, count=total, shared=view.owner_id is None
    )


@router.delete("/views/{view_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_view(view_id: int, principal: ApiAgent, db: Db) -> None:
    view = await ticket_views.get_view(db, view_id, user_id=principal.identity.id)
    await ticket_views.delete_view(
        db, view, is_admin=principal.role == Role.admin, actor=principal.actor
    )


@router.post(
    "/tickets/{ticket_id}/viewers",
    response_model=list[ViewerRead],
    summary="I have this ticket open; who else has?",
)
async def viewers(ticket_id: int, body: Presence, principal: ApiAgent, db: Db) -> list[ViewerRead]:
    """Call every few seconds while a ticket is open: the answer lists the other agents
    who have it open now, and whether they are writing a reply (a collision warning)."""
    ticket = await service.get_ticket(db, ticket_id)
    others = await ticket_views.looking(
        db, ticket, user_id=principal.identity.id, replying=body.replying
    )
    names = {u.id: u.name for u in await auth.users_by_id(db, [v.user_id for v in others])}
    return [
        ViewerRead(user_id=v.user_id, name=names.get(v.user_id, "?"), replying=v.replying)
        for v in others
    ]


@router.get("/search", response_model=SearchResults, summary="Search tickets and customers")
async def search(
    principal: ApiUser,
    db: Db,
    q: Annotated[
        str, Query(max_length=500, description='e.g. `status:open tag:refund "lost parcel"`')
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> SearchResults:
    """Full text over subjects (weighted highest) and message bodies, with field filters
    (status, assignee, tag, priority, channel, team, requester, type); customers by any
    fragment of their name or identities."""
    found = await ticket_search.search(db, q, me=principal.identity.id, limit=limit)
    return SearchResults(
        tickets=[TicketHitRead(**vars(hit)) for hit in found.tickets],
        customers=[CustomerHitRead(**vars(hit)) for hit in found.customers],
    )


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketRead,
    responses={308: {"description": "The ticket was merged: Location is the one it became"}},
)
async def get_ticket(
    ticket_id: int, principal: ApiUser, db: Db, response: Response
) -> Response | TicketRead:
    ticket = await service.get_ticket(db, ticket_id)
    if ticket.merged_into_id is not None:
        return RedirectResponse(f"/api/v1/tickets/{ticket.merged_into_id}", status_code=308)
    response.headers["ETag"] = etag(ticket.version)
    return TicketRead.model_validate(ticket)


@router.post(
    "/tickets/{ticket_id}/merge",
    response_model=TicketRead,
    summary="Merge this ticket into another (messages move; this number redirects)",
)
async def merge_ticket(
    ticket_id: int, body: TicketMerge, principal: ApiAgent, db: Db
) -> TicketRead:
    source = await service.get_ticket(db, ticket_id)
    target = await service.get_ticket(db, body.into_id)
    return TicketRead.model_validate(await merging.merge(db, source, target, actor=principal.actor))


@router.post(
    "/tickets/{ticket_id}/split",
    response_model=TicketRead,
    status_code=status.HTTP_201_CREATED,
    summary="Move messages into a new, linked ticket",
)
async def split_ticket(
    ticket_id: int, body: TicketSplit, principal: ApiAgent, db: Db
) -> TicketRead:
    ticket = await service.get_ticket(db, ticket_id)
    new = await merging.split(
        db, ticket, message_ids=body.message_ids, subject=body.subject, actor=principal.actor
    )
    return TicketRead.model_validate(new)


@router.get("/tickets/{ticket_id}/relations", response_model=TicketRelations)
async def relations(ticket_id: int, principal: ApiUser, db: Db) -> TicketRelations:
    ticket = await service.get_ticket(db, ticket_id)
    links = [
        {"ticket_id": other, "kind": kind} for other, kind in await merging.links_of(db, ticket)
    ]
    return TicketRelations(links=links, follower_ids=await merging.followers_of(db, ticket))


@router.post("/tickets/{ticket_id}/links", response_model=TicketRelations)
async def link_ticket(
    ticket_id: int, body: TicketLinkCreate, principal: ApiAgent, db: Db
) -> TicketRelations:
    ticket = await service.get_ticket(db, ticket_id)
    other = await service.get_ticket(db, body.linked_id)
    await merging.link(db, ticket, other, actor=principal.actor)
    return await relations(ticket_id, principal, db)


@router.put("/tickets/{ticket_id}/followers/{user_id}", response_model=TicketRelations)
async def follow(ticket_id: int, user_id: int, principal: ApiAgent, db: Db) -> TicketRelations:
    ticket = await service.get_ticket(db, ticket_id)
    await merging.follow(db, ticket, user_id, actor=principal.actor)
    return await relations(ticket_id, principal, db)


@router.delete("/tickets/{ticket_id}/followers/{user_id}", response_model=TicketRelations)
async def unfollow(ticket_id: int, user_id: int, principal: ApiAgent, db: Db) -> TicketRelations:
    ticket = await service.get_ticket(db, ticket_id)
    await merging.unfollow(db, ticket, user_id, actor=principal.actor)
    return await relations(ticket_id, principal, db)


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketRead,
    responses={
        409: {"description": "Not an allowed status change (lists the allowed)"},
        412: {"description": "The version sent is not the current one"},
    },
)
async def update_ticket(
    ticket_id: int,
    body: TicketUpdate,
    principal: ApiAgent,
    db: Db,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> TicketRead:
    expected = parse_if_match(if_match, body.version)
    ticket = await service.get_ticket(db, ticket_id)
    ticket = await service.update_ticket(
        db,
        ticket,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    response.headers["ETag"] = etag(ticket.version)
    return TicketRead.model_validate(ticket)


@router.get("/tickets/{ticket_id}/messages", response_model=list[MessageRead])
async def list_messages(ticket_id: int, principal: ApiUser, db: Db) -> list[MessageRead]:
    ticket = await service.get_ticket(db, ticket_id)
    return await read_messages(db, await service.thread(db, ticket))


async def read_messages(db: AsyncSession, messages: list[Message]) -> list[MessageRead]:
    files = await attachments.of_messages(db, [m.id for m in messages])
    return [
        MessageRead.model_validate(m).model_copy(
            update={"attachments": [attachment_read(a) for a in files[m.id]]}
        )
        for m in messages
    ]


def attachment_read(attachment: Attachment) -> AttachmentRead:
    return AttachmentRead.model_validate(attachment).model_copy(
        update={"url": f"/api/v1/attachments/{attachment.id}"}
    )


@router.post(
    "/tickets/{ticket_id}/messages",
    response_model=MessageRead,
    status_code=status.HTTP_201_CREATED,
    summary="Reply or add an internal note",
)
async def add_message(
    ticket_id: int, body: MessageCreate, principal: ApiAgent, db: Db
) -> MessageRead:
    ticket = await service.get_ticket(db, ticket_id)
    message = await service.add_message(
        db,
        ticket,
        public=body.kind == "reply",
        author_type="agent",
        author_user_id=principal.identity.id,
        body_text=body.body,
        body_html=body.body_html,
        status=body.status,
        expected_version=body.version,
        attachment_ids=body.attachment_ids,
        actor=principal.actor,
    )
    return (await read_messages(db, [message]))[0]


@router.post(
    "/customers/{customer_id}/merge",
    response_model=CustomerRead,
    tags=["customers"],
    summary="Merge this customer into another, moving every ticket",
)
async def merge_customer(
    customer_id: int, body: CustomerMerge, principal: ApiAgent, db: Db
) -> CustomerRead:
    source = await customers.get_customer(db, customer_id)
    target = await customers.get_customer(db, body.into_id)
    await customers.merge_into(db, source, target, actor=principal.actor)
    await service.move_requester(db, from_id=source.id, to_id=target.id, actor=principal.actor)
    return (await read_many(db, [target]))[0]


@router.get("/custom-fields", response_model=list[CustomFieldRead], tags=["custom fields"])
async def list_custom_fields(principal: ApiUser, db: Db) -> list[CustomFieldRead]:
    fields = await custom_fields.list_fields(db, include_inactive=True)
    return [CustomFieldRead.model_validate(f) for f in fields]


@router.post(
    "/custom-fields",
    response_model=CustomFieldRead,
    tags=["custom fields"],
    status_code=status.HTTP_201_CREATED,
)
async def create_custom_field(
    body: CustomFieldCreate, principal: ApiAdmin, db: Db
) -> CustomFieldRead:
    field = await custom_fields.create_field(db, actor=principal.actor, **body.model_dump())
    return CustomFieldRead.model_validate(field)


@router.patch("/custom-fields/{field_id}", response_model=CustomFieldRead, tags=["custom fields"])
async def update_custom_field(
    field_id: int,
    body: CustomFieldUpdate,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> CustomFieldRead:
    expected = parse_if_match(if_match, body.version)
    field = await custom_fields.get_field(db, field_id)
    field = await custom_fields.update_field(
        db,
        field,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    return CustomFieldRead.model_validate(field)


def _storage(request: Request) -> Storage:
    settings = runtime(request).settings
    return storage_for(settings.attachment_storage, settings.data_dir)


@router.post(
    "/uploads",
    response_model=AttachmentRead,
    status_code=status.HTTP_201_CREATED,
    tags=["attachments"],
    summary="Upload a file to attach to a message",
    responses={
        413: {"description": "Larger than the limit"},
        415: {"description": "A blocked or disguised type"},
    },
)
async def upload(request: Request, file: UploadFile, principal: ApiAgent, db: Db) -> AttachmentRead:
    limit = runtime(request).settings.max_attachment_bytes
    # one byte more than the limit tells an oversized file without reading all of it
    data = await file.read(limit + 1)
    attachment = await attachments.upload(
        db,
        _storage(request),
        filename=file.filename or "",
        content_type=file.content_type,
        data=data,
        max_bytes=limit,
        user_id=principal.identity.id,
        actor=principal.actor,
    )
    return attachment_read(attachment)


@router.get(
    "/attachments/{attachment_id}",
    tags=["attachments"],
    response_class=Response,
    summary="Download a file",
)
async def download(request: Request, attachment_id: int, principal: ApiUser, db: Db) -> Response:
    attachment = await attachments.get_attachment(db, attachment_id)
    if attachment.message_id is None and attachment.uploaded_by_user_id != principal.identity.id:
        # an upload not yet sent belongs to its uploader alone
        raise NotFound(f"No attachment {attachment_id}")
    data = await _storage(request).get(db, attachment.storage_key)
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )
