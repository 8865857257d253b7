"""Pages of surveys: the customer's answer pages (public, reached from the mail's links),
the rating form under a customer's solved request in the portal, the scores page for
staff, and the admin's survey settings."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from servicecycle.auth.deps import Db, PageAdmin, PageUser, Public, runtime
from servicecycle.auth.flash import flash
from servicecycle.customers.models import Customer
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError
from servicecycle.portal import panels
from servicecycle.portal import requests as portal_requests
from servicecycle.portal import service as portal
from servicecycle.portal.deps import PortalVisitor, Visitor
from servicecycle.surveys import in_place, service
from servicecycle.surveys.models import KINDS, Survey, SurveyInvitation
from servicecycle.tickets.models import CHANNELS, Ticket
from servicecycle.web.forms import form_text, form_version, problem
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

FORM_COOKIE = "sc_survey_form"  # double-submit token of the "why?" form
PORTAL_COOKIE = "sc_portal"
REFUSALS = {
    "invalid": (
        "This link cannot be used",
        "The link is not complete or was changed. Please use the link from the e-mail as it is.",
    ),
    "expired": (
        "This survey has closed",
        "Survey links work for 30 days. Thank you all the same.",
    ),
    "other customer": (
        "This link is for someone else",
        "This survey was sent to another person, so it cannot be answered here.",
    ),
}


def _customer_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    form_token: str | None = None,
) -> Response:
    """A page in the portal's look (its layout), for a customer who may not be signed in."""
    base: dict[str, Any] = {
        "desk_name": runtime(request).settings.desk_name,
        "customer": None,
        "csrf_token": "",
        "error": None,
        "fields": {},
        "form_token": form_token or "",
    }
    response = render(request, f"surveys/{name}", base | context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of Referer
    if form_token:
        response.set_cookie(
            FORM_COOKIE,
            form_token,
            httponly=True,
            samesite="lax",
            secure=runtime(request).settings.secure_cookies,
            path="/surveys/r/",
        )
    return response


def _refused(request: Request, reason: str, status_code: int) -> Response:
    title, text = REFUSALS.get(reason, REFUSALS["invalid"])
    return _customer_page(
        request, "refused.html", {"title": title, "text": text}, status_code=status_code
    )


async def _invitation(
    request: Request, db: Db, token: str
) -> tuple[SurveyInvitation, Survey] | Response:
    """The link's invitation, or the friendly page that refuses it. A customer signed in to
    the portal as someone else is refused too."""
    try:
        invitation, survey = await service.resolve_token(
            db, runtime(request).settings.keyring(), token
        )
    except service.Refused as exc:
        return _refused(request, exc.reason, exc.status)
    cookie = request.cookies.get(PORTAL_COOKIE)
    if cookie:
        found = await portal.resolve_session(db, cookie, kind="web")
        if found is not None and found[1].id != invitation.customer_id:
            return _refused(request, "other customer", 403)
    return invitation, survey


def _scale(survey: Survey) -> list[int]:
    return list(range(survey.scale_min, survey.scale_max + 1))


def _answer_context(survey: Survey, token: str, score: int | None, comment: str) -> dict[str, Any]:
    low, high = service.DEFAULTS[survey.kind]["labels"]
    return {
        "survey": survey,
        "token": token,
        "score": score,
        "comment": comment,
        "scale": _scale(survey),
        "low_label": low,
        "high_label": high,
    }


@router.get("/surveys/r/{token}", dependencies=[Public])
async def answer_link(request: Request, db: Db, token: str, score: str | None = None) -> Response:
    """One click in the mail: record (or change) the score, thank, and ask "why?"."""
    found = await _invitation(request, db, token)
    if isinstance(found, Response):
        return found
    invitation, survey = found
    existing = await service.response_of(db, invitation.id)
    if score is None:  # the form, without a click's score: choose one here
        return _customer_page(
            request,
            "answer.html",
            _answer_context(
                survey,
                token,
                existing.score if existing else None,
                existing.comment if existing else "",
            )
            | {"recorded": False},
            form_token=secrets.token_urlsafe(32),
        )
    try:
        async with db.begin_nested():
            response = await service.answer(db, invitation, survey, score=score, source="email")
    except ServiceError as exc:
        return _customer_page(
            request,
            "refused.html",
            {
                "title": "That answer is not on the scale",
                "text": f"Please choose a number from {survey.scale_min} to {survey.scale_max}.",
                "retry": f"/surveys/r/{token}",
            },
            status_code=exc.status_code,
        )
    return _customer_page(
        request,
        "answer.html",
        _answer_context(survey, token, response.score, response.comment) | {"recorded": True},
        form_token=secrets.token_urlsafe(32),
    )


def _form_ok(request: Request, form: FormData) -> bool:
    cookie = request.cookies.get(FORM_COOKIE, "")
    sent = form.get("csrf_token")
    return bool(cookie and isinstance(sent, str) and hmac.compare_digest(cookie, sent))


@router.post("/surveys/r/{token}", dependencies=[Public])
async def answer_form(request: Request, db: Db, token: str) -> Response:
    """The portal form: a score (if none was clicked yet, or to change it) and "why?"."""
    found = await _invitation(request, db, token)
    if isinstance(found, Response):
        return found
    invitation, survey = found
    form = await request.form()
    score_field = form.get("score")
    comment_field = form.get("comment")
    comment = comment_field if isinstance(comment_field, str) else ""
    existing = await service.response_of(db, invitation.id)
    score: Any = score_field if isinstance(score_field, str) and score_field else None
    if score is None and existing is not None:
        score = existing.score
    context = _answer_context(survey, token, None, comment) | {"recorded": False}
    if not _form_ok(request, form):
        return _customer_page(
            request,
            "answer.html",
            context | {"error": "Your form expired. Please send it again."},
            status_code=400,
            form_token=secrets.token_urlsafe(32),
        )
    if score is None:
        return _customer_page(
            request,
            "answer.html",
            context | {"error": "Please choose a score.", "fields": {"score": "required"}},
            status_code=422,
            form_token=secrets.token_urlsafe(32),
        )
    try:
        async with db.begin_nested():
            await service.answer(
                db, invitation, survey, score=score, comment=comment, source="portal"
            )
    except ServiceError as exc:
        return _customer_page(
            request,
            "answer.html",
            context | problem(exc),
            status_code=exc.status_code,
            form_token=secrets.token_urlsafe(32),
        )
    return _customer_page(request, "thanks.html", {"survey": survey})


# -- the portal: a rating under the customer's own solved request ---------------------------


@panels.provide
async def rating_panel(db: AsyncSession, customer: Customer, ticket: Ticket) -> panels.Panel | None:
    """The "How did we do?" card, on the customer's own solved request when the desk asks."""
    found = await in_place.portal_offers(db, customer.id, ticket)
    if not found:
        return None
    return panels.Panel("surveys/_portal_rating.html", {"offers": found})


def _portal_page(
    request: Request, who: Visitor, name: str, context: dict[str, Any], *, status_code: int
) -> Response:
    base: dict[str, Any] = {
        "desk_name": runtime(request).settings.desk_name,
        "customer": who.customer,
        "csrf_token": who.csrf_token,
        "form_token": "",
        "error": None,
        "fields": {},
    }
    return render(request, name, base | context, status_code=status_code)


@router.post("/portal/requests/{ticket_id:int}/rating")
async def portal_rating(request: Request, ticket_id: int, who: PortalVisitor, db: Db) -> Response:
    """The portal's rating form: records (or changes) the answer, source "portal"."""
    if who.customer is None:
        return RedirectResponse("/portal", status_code=303)
    form = await request.form()
    comment = form.get("comment")
    draft: dict[str, Any] = {
        "kind": form_text(form, "kind"),
        "score": form_text(form, "score") or None,
        "comment": comment if isinstance(comment, str) else "",
    }
    try:
        ticket = await portal_requests.get_visible(db, who.customer, ticket_id)
        in_place.check_own_solved(who.customer.id, ticket)
    except NotFound as exc:
        return _portal_page(
            request, who, "portal/not_found.html", {"message": exc.message}, status_code=404
        )
    except ServiceError as exc:  # not solved (any more): say so, nothing to rate yet
        return _portal_page(
            request,
            who,
            "surveys/portal_rating.html",
            {"ticket": ticket, "panel": panels.Panel("surveys/_portal_rating.html", {})}
            | problem(exc),
            status_code=exc.status_code,
        )
    try:
        async with db.begin_nested():
            await in_place.rate(
                db,
                ticket,
                kind=draft["kind"],
                score=draft["score"],
                comment=draft["comment"],
                source="portal",
            )
    except ServiceError as exc:
        found = await in_place.portal_offers(db, who.customer.id, ticket)
        return _portal_page(
            request,
            who,
            "surveys/portal_rating.html",
            {
                "ticket": ticket,
                "panel": panels.Panel(
                    "surveys/_portal_rating.html", {"offers": found, "draft": draft}
                ),
            }
            | problem(exc),
            status_code=exc.status_code,
        )
    return RedirectResponse(f"/portal/requests/{ticket.id}#rating", status_code=303)


# -- staff: scores --------------------------------------------------------------------------

PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}


@router.get("/surveys")
async def scores_page(
    request: Request,
    principal: PageUser,
    db: Db,
    group: str = "team",
    period: str = "90",
) -> Response:
    """NPS (with its 95% interval), CSAT and CES by team, agent, channel, category or month."""
    group = group if group in service.GROUPS else "team"
    days = PERIODS.get(period, 90)
    since = clock.now() - timedelta(days=days) if days else None
    tables = {
        kind: await service.score_table(db, kind=kind, group=group, since=since)
        for kind in ("nps", "csat", "ces")
    }
    overall: dict[str, dict[str, Any] | None] = {}
    for kind in ("nps", "csat", "ces"):
        rows = await service.score_table(db, kind=kind, since=since)
        overall[kind] = rows[0] if rows else None
    return render(
        request,
        "surveys/scores.html",
        {
            "tables": tables,
            "overall": overall,
            "group": group,
            "groups": [g for g in service.GROUPS if g != "customer"],
            "period": period if period in PERIODS else "90",
        },
    )


@router.get("/surveys/customers/{customer_id:int}")
async def customer_fragment(
    request: Request, customer_id: int, principal: PageUser, db: Db
) -> Response:
    """A fragment for the customer's page: their last answers and their NPS and CSAT."""
    found = await service.customer_surveys(db, customer_id)
    return render(request, "surveys/_customer.html", {"found": found})


@router.get("/surveys/tickets/{ticket_id:int}")
async def ticket_fragment(
    request: Request, ticket_id: int, principal: PageUser, db: Db
) -> Response:
    """A fragment for the ticket's side column: the ratings given on this ticket (by mail,
    in chat or in the portal); empty when there is none."""
    await service.ticket_of(db, ticket_id)  # 404 for an unknown ticket
    answers = await service.list_responses(db, service.ResponseFilter(ticket_id=ticket_id))
    return render(request, "surveys/_ticket.html", {"answers": answers})


# -- admin: surveys and rules ---------------------------------------------------------------


async def _admin_page(
    request: Request,
    db: Db,
    *,
    draft: dict[str, Any] | None = None,
    refusal: ServiceError | None = None,
    refused_survey: int | None = None,
    refused_rule: int | None = None,
) -> Response:
    surveys = await service.list_surveys(db)
    rules = await service.rules_of(db, [s.id for s in surveys])
    return render(
        request,
        "surveys/admin.html",
        {
            "surveys": surveys,
            "rules": rules,
            "kinds": KINDS,
            "channels": CHANNELS,
            "defaults": service.DEFAULTS,
            "draft": draft or {"kind": "nps", "name": ""},
            **(problem(refusal) if refusal else {"error": None, "fields": {}}),
            "refused_survey": refused_survey,
            "refused_rule": refused_rule,
        },
        status_code=refusal.status_code if refusal else 200,
    )


@router.get("/admin/surveys")
async def admin_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _admin_page(request, db)


@router.post("/admin/surveys")
async def create_survey(request: Request, principal: PageAdmin, db: Db) -> Response:
    form = await request.form()
    draft: dict[str, Any] = {
        "name": form_text(form, "name"),
        "kind": form_text(form, "kind"),
        "question": form_text(form, "question") or None,
        "why_question": form_text(form, "why_question") if "why_question" in form else None,
        "enabled": form_text(form, "enabled") == "on",
    }
    if draft["kind"] == "custom":
        draft["scale_min"] = form_text(form, "scale_min") or None
        draft["scale_max"] = form_text(form, "scale_max") or None
    try:
        async with db.begin_nested():
            survey = await service.create_survey(db, actor=principal.actor, **draft)
            if form_text(form, "with_rule") == "on":
                await service.create_rule(db, survey, actor=principal.actor)
    except ServiceError as exc:
        return await _admin_page(request, db, draft=draft, refusal=exc)
    flash(principal, f"Survey “{survey.name}” created.")
    return RedirectResponse("/admin/surveys", status_code=303)


@router.post("/admin/surveys/{survey_id:int}")
async def update_survey(request: Request, survey_id: int, principal: PageAdmin, db: Db) -> Response:
    survey = await service.get_survey(db, survey_id)
    form = await request.form()
    changes: dict[str, Any] = {}
    for name in ("name", "question", "why_question"):
        if name in form:
            changes[name] = form_text(form, name)
    if "enabled" in form:
        changes["enabled"] = form_text(form, "enabled") in ("on", "true")
    try:
        async with db.begin_nested():
            await service.update_survey(db, survey, changes=changes, actor=principal.actor)
    except ServiceError as exc:
        return await _admin_page(request, db, refusal=exc, refused_survey=survey_id)
    flash(principal, f"Survey “{survey.name}” saved.")
    return RedirectResponse("/admin/surveys", status_code=303)


@router.post("/admin/surveys/{survey_id:int}/rules")
async def create_rule(request: Request, survey_id: int, principal: PageAdmin, db: Db) -> Response:
    survey = await service.get_survey(db, survey_id)
    form = await request.form()
    try:
        async with db.begin_nested():
            await service.create_rule(
                db,
                survey,
                delay_hours=form_text(form, "delay_hours") or "24",
                channels=[c for c in form.getlist("channels") if isinstance(c, str)],
                tiers=form_text(form, "tiers"),
                segments=form_text(form, "segments"),
                throttle_days=form_text(form, "throttle_days") or "30",
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _admin_page(request, db, refusal=exc, refused_survey=survey_id)
    flash(principal, f"Sending rule added to “{survey.name}”.")
    return RedirectResponse("/admin/surveys", status_code=303)


@router.post("/admin/surveys/rules/{rule_id:int}")
async def update_rule(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    """The rule's edit form: delay, channels, tiers, segments, throttle, in use."""
    rule = await service.get_rule(db, rule_id)
    form = await request.form()
    changes: dict[str, Any] = {
        "delay_hours": form_text(form, "delay_hours"),
        "channels": [c for c in form.getlist("channels") if isinstance(c, str)],
        "tiers": form_text(form, "tiers"),
        "segments": form_text(form, "segments"),
        "throttle_days": form_text(form, "throttle_days"),
    }
    if "enabled_shown" in form:
        changes["enabled"] = form_text(form, "enabled") == "on"
    try:
        async with db.begin_nested():
            await service.update_rule(
                db,
                rule,
                expected_version=form_version(form_text(form, "version")),
                changes=changes,
                actor=principal.actor,
            )
    except ServiceError as exc:
        await db.refresh(rule)
        return await _admin_page(request, db, refusal=exc, refused_rule=rule_id)
    flash(principal, "Sending rule saved.")
    return RedirectResponse("/admin/surveys", status_code=303)


@router.post("/admin/surveys/rules/{rule_id:int}/delete")
async def delete_rule(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    rule = await service.get_rule(db, rule_id)
    await service.delete_rule(db, rule, actor=principal.actor)
    flash(principal, "Sending rule deleted.")
    return RedirectResponse("/admin/surveys", status_code=303)
