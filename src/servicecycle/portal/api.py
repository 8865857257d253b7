"""REST routes of the customer portal, for a headless portal: sign in, list, open, reply.

Customers authenticate with ``Authorization: Bearer scp_...`` from ``POST /portal/sessions``;
agents' tokens and sessions are not accepted here, and customer tokens work nowhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth.deps import ApiAdmin, Db, Public, runtime
from servicecycle.customers.models import Customer
from servicecycle.kit.errors import ValidationFailed
from servicecycle.portal import requests, service
from servicecycle.portal.deps import (
    ApiCustomer,
    client_ip,
    files,
    policy,
    send_mail_soon,
)
from servicecycle.portal.schemas import (
    CompanySharing,
    FieldRead,
    FileRead,
    LinkRequest,
    LinkRequested,
    MessageRead,
    ReplyCreate,
    RequestCreate,
    RequestDetail,
    RequestRead,
    SessionCreate,
    SessionCreated,
    UploadRead,
)
from servicecycle.tickets.models import Ticket
from servicecycle.web.errors import error_body

router = APIRouter(prefix="/api/v1", tags=["portal"])


def _portal_url(request: Request) -> str:
    base = runtime(request).settings.base_url or str(request.base_url)
    return base.rstrip("/") + "/portal"


async def _read(db: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    public = {f.key for f in await requests.public_fields(db)}
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "channel": ticket.channel,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "custom": {k: v for k, v in ticket.custom.items() if k in public},
    }


async def _detail(db: AsyncSession, ticket: Ticket) -> RequestDetail:
    messages, attached = await requests.public_thread(db, ticket)
    return RequestDetail(
        **await _read(db, ticket),
        messages=[
            MessageRead(
                id=m.id,
                author="customer" if m.author_type == "customer" else "support",
                body_html=m.body_html,
                body_text=m.body_text,
                created_at=m.created_at,
                files=[FileRead.model_validate(a) for a in attached[m.id]],
            )
            for m in messages
        ],
    )


@router.post(
    "/portal/magic-links",
    dependencies=[Public],
    response_model=LinkRequested,
    status_code=status.HTTP_202_ACCEPTED,
    summary="E-mail a sign-in link (the same answer for unknown addresses; rate-limited)",
)
async def request_link(
    request: Request, body: LinkRequest, db: Db, background: BackgroundTasks
) -> LinkRequested:
    settings = runtime(request).settings
    await service.request_link(
        db,
        email=body.email,
        ip=client_ip(request),
        keyring=settings.keyring(),
        portal_url=_portal_url(request),
        sender=settings.mail_from,
        desk_name=settings.desk_name,
        policy=policy(settings),
    )
    background.add_task(send_mail_soon, runtime(request).jobs)
    return LinkRequested(status="sent_if_known")


@router.post(
    "/portal/sessions",
    dependencies=[Public],
    response_model=SessionCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Exchange a sign-in link's token, or an e-mail and password, for a customer token",
)
async def create_session(request: Request, body: SessionCreate, db: Db) -> Any:
    settings = runtime(request).settings
    rules = policy(settings)
    customer: Customer | None
    if body.link_token is not None:
        customer = await service.consume_link(
            db, token=body.link_token, keyring=settings.keyring(), policy=rules
        )
    elif body.email is not None and body.password is not None:
        customer = await service.authenticate(
            db, email=body.email, password=body.password, ip=client_ip(request), policy=rules
        )
        if customer is None:
            # answered, not raised: the failure must be committed, it counts towards the throttle
            return JSONResponse(
                error_body("unauthenticated", "Wrong e-mail or password"),
                status_code=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Bearer"},
            )
    else:
        raise ValidationFailed(
            "Send link_token, or email and password",
            fields={"link_token": "or email and password"},
        )
    token = await service.start_session(db, customer, kind="api", lifetime=rules.session_lifetime)
    return SessionCreated(token=token, customer_id=customer.id, name=customer.name)


@router.get("/portal/fields", response_model=list[FieldRead], summary="The public fields")
async def list_fields(customer: ApiCustomer, db: Db) -> list[FieldRead]:
    return [FieldRead.model_validate(f) for f in await requests.public_fields(db)]


@router.get("/portal/tickets", response_model=list[RequestRead], summary="My requests")
async def list_tickets(customer: ApiCustomer, db: Db) -> list[RequestRead]:
    found = await requests.visible_tickets(db, customer)
    return [RequestRead(**await _read(db, t)) for t in found]


@router.post(
    "/portal/tickets",
    response_model=RequestDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Open a request",
)
async def create_ticket(
    request: Request, body: RequestCreate, customer: ApiCustomer, db: Db
) -> RequestDetail:
    ticket = await requests.open_request(
        db,
        customer,
        subject=body.subject,
        description=body.description,
        custom=body.custom,
        files=[],
        limits=files(runtime(request).settings),
        attachment_ids=body.attachment_ids,
    )
    return await _detail(db, ticket)


@router.get(
    "/portal/tickets/{ticket_id}", response_model=RequestDetail, summary="A request I can see"
)
async def get_ticket(ticket_id: int, customer: ApiCustomer, db: Db) -> RequestDetail:
    return await _detail(db, await requests.get_visible(db, customer, ticket_id))


@router.post(
    "/portal/tickets/{ticket_id}/replies",
    response_model=RequestDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Reply (reopens a solved request)",
)
async def reply(
    request: Request, ticket_id: int, body: ReplyCreate, customer: ApiCustomer, db: Db
) -> RequestDetail:
    ticket = await requests.get_visible(db, customer, ticket_id)
    await requests.reply(
        db,
        customer,
        ticket,
        body=body.body,
        files=[],
        limits=files(runtime(request).settings),
        attachment_ids=body.attachment_ids,
    )
    return await _detail(db, ticket)


@router.post(
    "/portal/uploads",
    response_model=UploadRead,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file, then send its id with a request or reply (413 when too large)",
)
async def upload(request: Request, file: UploadFile, customer: ApiCustomer, db: Db) -> UploadRead:
    stored = await requests.upload(
        db,
        customer,
        file=requests.Upload(
            filename=file.filename or "", content_type=file.content_type, data=await file.read()
        ),
        limits=files(runtime(request).settings),
    )
    return UploadRead.model_validate(stored)


@router.get(
    "/portal/tickets/{ticket_id}/files/{file_id}",
    response_class=Response,
    summary="Download a file of a request's public conversation",
)
async def download(
    request: Request, ticket_id: int, file_id: int, customer: ApiCustomer, db: Db
) -> Response:
    attachment = await requests.visible_attachment(db, customer, ticket_id, file_id)
    data = await files(runtime(request).settings).storage.get(db, attachment.storage_key)
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.put(
    "/portal/companies/{company_id}",
    response_model=CompanySharing,
    summary="Let a company's people see each other's requests in the portal (admins)",
)
async def share_company(
    company_id: int, body: CompanySharing, principal: ApiAdmin, db: Db
) -> CompanySharing:
    await service.set_company_shared(db, company_id, shared=body.shared, actor=principal.actor)
    return body


@router.delete(
    "/portal/sessions/current",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out (end this customer token)",
)
async def end_session(request: Request, customer: ApiCustomer, db: Db) -> Response:
    token = request.headers.get("authorization", "")[7:].strip()
    found = await service.resolve_session(db, token, kind="api")
    if found is not None:
        await service.end_session(db, found[0])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
