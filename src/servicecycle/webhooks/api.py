"""REST routes of webhooks: subscriptions and their delivery log (admins), and the inbound
endpoint other systems create tickets through (an API token of an agent or admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from servicecycle.auth.deps import ApiAdmin, ApiAgent, Db, runtime
from servicecycle.webhooks import service
from servicecycle.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    InboundResult,
    InboundTicket,
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
SUBS = "/webhooks/subscriptions"
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input; `fields` names the bad field"}
}


def _sending(request: Request) -> service.Sending:
    return service.sending_for(runtime(request).settings)


@router.get(SUBS, response_model=list[SubscriptionRead], summary="Webhook subscriptions")
async def list_subscriptions(principal: ApiAdmin, db: Db) -> list[SubscriptionRead]:
    return [SubscriptionRead.model_validate(s) for s in await service.list_subscriptions(db)]


@router.post(
    SUBS,
    response_model=SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to events (the answer holds the secret, this once)",
    responses={**REFUSED, 409: {"description": "The name is taken"}},
)
async def create_subscription(
    body: SubscriptionCreate, request: Request, principal: ApiAdmin, db: Db
) -> SubscriptionCreated:
    sub, secret = await service.create_subscription(
        db, sending=_sending(request), actor=principal.actor, **body.model_dump()
    )
    return SubscriptionCreated(**SubscriptionRead.model_validate(sub).model_dump(), secret=secret)


@router.get(f"{SUBS}/{{subscription_id}}", response_model=SubscriptionRead)
async def get_subscription(subscription_id: int, principal: ApiAdmin, db: Db) -> SubscriptionRead:
    return SubscriptionRead.model_validate(await service.get_subscription(db, subscription_id))


@router.patch(
    f"{SUBS}/{{subscription_id}}",
    response_model=SubscriptionRead,
    responses={**REFUSED, 409: {"description": "The name is taken"}},
)
async def update_subscription(
    subscription_id: int, body: SubscriptionUpdate, request: Request, principal: ApiAdmin, db: Db
) -> SubscriptionRead:
    sub = await service.get_subscription(db, subscription_id)
    sub = await service.update_subscription(
        db,
        sub,
        changes=body.model_dump(exclude_unset=True),
        allow_private=_sending(request).allow_private,
        actor=principal.actor,
    )
    return SubscriptionRead.model_validate(sub)


@router.delete(f"{SUBS}/{{subscription_id}}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(subscription_id: int, principal: ApiAdmin, db: Db) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    await service.delete_subscription(db, sub, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    f"{SUBS}/{{subscription_id}}/rotate-secret",
    response_model=SecretRotated,
    summary="Replace the signing secret (the answer holds the new one, this once)",
)
async def rotate_secret(
    subscription_id: int, request: Request, principal: ApiAdmin, db: Db
) -> SecretRotated:
    sub = await service.get_subscription(db, subscription_id)
    secret = await service.rotate_secret(
        db, sub, keyring=_sending(request).keyring, actor=principal.actor
    )
    return SecretRotated(secret=secret)


@router.post(
    f"{SUBS}/{{subscription_id}}/ping",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a `webhook.ping` delivery to test the receiver",
)
async def ping(subscription_id: int, principal: ApiAdmin, db: Db) -> DeliveryRead:
    sub = await service.get_subscription(db, subscription_id)
    return DeliveryRead.model_validate(await service.ping(db, sub, actor=principal.actor))


@router.get(
    "/webhooks/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log, newest first",
)
async def list_deliveries(
    principal: ApiAdmin,
    db: Db,
    subscription_id: int | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    page = await service.list_deliveries(
        db, subscription_id=subscription_id, status=status, limit=limit, cursor=cursor
    )
    return DeliveryPage(
        items=[DeliveryRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor
    )


@router.get(f"{SUBS}/{{subscription_id}}/deliveries", response_model=DeliveryPage)
async def subscription_deliveries(
    subscription_id: int,
    principal: ApiAdmin,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    await service.get_subscription(db, subscription_id)
    return await list_deliveries(
        principal, db, subscription_id=subscription_id, limit=limit, cursor=cursor
    )


@router.post(
    "/webhooks/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again (same delivery id, fresh attempts)",
)
async def redeliver(delivery_id: int, principal: ApiAdmin, db: Db) -> DeliveryRead:
    row = await service.get_delivery(db, delivery_id)
    return DeliveryRead.model_validate(await service.redeliver(db, row, actor=principal.actor))


@router.post(
    "/webhooks/inbound/{source}",
    response_model=InboundResult,
    status_code=status.HTTP_201_CREATED,
    summary="Create a ticket from another system (idempotent by external_id)",
    description=(
        "Authenticate with an API token of an agent or admin (`Authorization: Bearer …`). "
        "`source` names the sending system; the same `external_id` from the same source "
        "answers 200 with the ticket made the first time."
    ),
    responses={
        200: {"description": "Seen before: the existing ticket", "model": InboundResult},
        **REFUSED,
    },
)
async def inbound(
    source: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$")],
    body: InboundTicket,
    response: Response,
    principal: ApiAgent,
    db: Db,
) -> InboundResult:
    ticket, created = await service.receive(
        db,
        source=source,
        external_id=body.external_id,
        subject=body.subject,
        body=body.body,
        email=body.requester.email,
        name=body.requester.name,
        priority=body.priority,
        tags=body.tags,
        custom=body.custom_fields,
        actor=principal.actor,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return InboundResult(
        ticket_id=ticket.id,
        created=created,
        status=ticket.status,
        source=source,
        external_id=body.external_id,
    )
