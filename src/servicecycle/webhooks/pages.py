"""Admin pages of webhooks: subscriptions, their secret (shown once), a test ping, and the
delivery log with redelivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from servicecycle.auth.deps import Db, PageAdmin, runtime
from servicecycle.auth.flash import flash
from servicecycle.kit.errors import ServiceError
from servicecycle.web.forms import form_text
from servicecycle.web.templating import render
from servicecycle.webhooks import service
from servicecycle.webhooks.kinds import CATALOGUE
from servicecycle.webhooks.models import WebhookSubscription

router = APIRouter(include_in_schema=False)
LOG_SIZE = 50


def _draft(form: FormData) -> dict[str, Any]:
    kinds = [k for line in form_text(form, "kinds").splitlines() for k in line.split(",")]
    return {
        "name": form_text(form, "name"),
        "url": form_text(form, "url"),
        "kinds": [k.strip() for k in kinds if k.strip()],
        "description": form_text(form, "description"),
        "enabled": form_text(form, "enabled") == "on",
    }


def _sending(request: Request) -> service.Sending:
    return service.sending_for(runtime(request).settings)


async def _list_page(
    request: Request,
    db: Db,
    draft: dict[str, Any] | None = None,
    *,
    refusal: ServiceError | None = None,
) -> Response:
    subs = await service.list_subscriptions(db)
    return render(
        request,
        "webhooks/list.html",
        {
            "subscriptions": subs,
            "draft": draft or {"name": "", "url": "", "kinds": ["ticket.*"], "description": ""},
            "catalogue": CATALOGUE,
            "error": refusal.message if refusal else None,
            "fields": dict(refusal.fields) if refusal else {},
        },
        status_code=refusal.status_code if refusal else 200,
    )


async def _sub_page(
    request: Request,
    db: Db,
    sub: WebhookSubscription,
    *,
    draft: dict[str, Any] | None = None,
    secret: str | None = None,
    refusal: ServiceError | None = None,
    cursor: str | None = None,
) -> Response:
    log = await service.list_deliveries(
        db, subscription_id=sub.id, limit=LOG_SIZE, cursor=cursor or None
    )
    return render(
        request,
        "webhooks/subscription.html",
        {
            "sub": sub,
            "draft": draft
            or {
                "name": sub.name,
                "url": sub.url,
                "kinds": sub.kinds,
                "description": sub.description,
                "enabled": sub.enabled,
            },
            "secret": secret,
            "deliveries": log.items,
            "next_cursor": log.next_cursor,
            "catalogue": CATALOGUE,
            "error": refusal.message if refusal else None,
            "fields": dict(refusal.fields) if refusal else {},
        },
        status_code=refusal.status_code if refusal else 200,
    )


@router.get("/admin/webhooks")
async def webhooks_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _list_page(request, db)


@router.post("/admin/webhooks")
async def create(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = _draft(await request.form())
    draft["enabled"] = True
    try:
        async with db.begin_nested():
            sub, secret = await service.create_subscription(
                db, sending=_sending(request), actor=principal.actor, **draft
            )
    except ServiceError as exc:
        return await _list_page(request, db, draft, refusal=exc)
    # rendered, not redirected: the secret is shown on this answer and kept nowhere else
    return await _sub_page(request, db, sub, secret=secret)


@router.get("/admin/webhooks/{subscription_id:int}")
async def subscription_page(
    request: Request,
    subscription_id: int,
    principal: PageAdmin,
    db: Db,
    cursor: str | None = None,
) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    return await _sub_page(request, db, sub, cursor=cursor)


@router.post("/admin/webhooks/{subscription_id:int}")
async def update(request: Request, subscription_id: int, principal: PageAdmin, db: Db) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    draft = _draft(await request.form())
    try:
        async with db.begin_nested():
            await service.update_subscription(
                db,
                sub,
                changes=draft,
                allow_private=_sending(request).allow_private,
                actor=principal.actor,
            )
    except ServiceError as exc:
        sub = await service.get_subscription(db, subscription_id)
        return await _sub_page(request, db, sub, draft=draft, refusal=exc)
    flash(principal, f"Webhook “{sub.name}” saved.")
    return RedirectResponse(f"/admin/webhooks/{sub.id}", status_code=303)


@router.post("/admin/webhooks/{subscription_id:int}/enabled")
async def set_enabled(
    request: Request, subscription_id: int, principal: PageAdmin, db: Db
) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    enabled = form_text(await request.form(), "enabled") == "true"
    await service.update_subscription(
        db, sub, changes={"enabled": enabled}, allow_private=True, actor=principal.actor
    )
    flash(principal, f"Webhook “{sub.name}” {'enabled' if enabled else 'disabled'}.")
    return RedirectResponse(f"/admin/webhooks/{sub.id}", status_code=303)


@router.post("/admin/webhooks/{subscription_id:int}/rotate")
async def rotate(request: Request, subscription_id: int, principal: PageAdmin, db: Db) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    secret = await service.rotate_secret(
        db, sub, keyring=_sending(request).keyring, actor=principal.actor
    )
    return await _sub_page(request, db, sub, secret=secret)


@router.post("/admin/webhooks/{subscription_id:int}/ping")
async def ping(request: Request, subscription_id: int, principal: PageAdmin, db: Db) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    try:
        async with db.begin_nested():
            await service.ping(db, sub, actor=principal.actor)
    except ServiceError as exc:
        flash(principal, exc.message, "error")
    else:
        flash(principal, "Ping queued: it is sent within a minute; see the log below.")
    return RedirectResponse(f"/admin/webhooks/{sub.id}", status_code=303)


@router.post("/admin/webhooks/{subscription_id:int}/delete")
async def delete(request: Request, subscription_id: int, principal: PageAdmin, db: Db) -> Response:
    sub = await service.get_subscription(db, subscription_id)
    await service.delete_subscription(db, sub, actor=principal.actor)
    flash(principal, f"Webhook “{sub.name}” deleted with its delivery log.")
    return RedirectResponse("/admin/webhooks", status_code=303)


@router.post("/admin/webhooks/deliveries/{delivery_id:int}/redeliver")
async def redeliver(request: Request, delivery_id: int, principal: PageAdmin, db: Db) -> Response:
    row = await service.get_delivery(db, delivery_id)
    await service.redeliver(db, row, actor=principal.actor)
    flash(principal, "Delivery queued again, with the same delivery id.")
    return RedirectResponse(f"/admin/webhooks/{row.subscription_id}", status_code=303)
