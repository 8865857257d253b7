"""REST routes of surveys: settings (admins), answers and scores (every signed-in role), and
a customer's rating of their own solved request (customer tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from servicecycle.auth.deps import ApiAdmin, ApiUser, Db
from servicecycle.kit.errors import NotFound
from servicecycle.portal import requests as portal_requests
from servicecycle.portal.deps import ApiCustomer
from servicecycle.surveys import in_place, service
from servicecycle.surveys.schemas import (
    CustomerSurveys,
    RatingCreate,
    RatingQuestion,
    RatingRead,
    ResponseRead,
    RuleCreate,
    RuleRead,
    RuleUpdate,
    ScoreRow,
    SurveyCreate,
    SurveyRead,
    SurveyUpdate,
)
from servicecycle.web.concurrency import etag, parse_if_match

router = APIRouter(prefix="/api/v1", tags=["surveys"])
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input; `fields` names the bad field"}
}


async def _read(db: Db, surveys: list[Any]) -> list[SurveyRead]:
    rules = await service.rules_of(db, [s.id for s in surveys])
    return [
        SurveyRead.model_validate(s).model_copy(
            update={"rules": [RuleRead.model_validate(r) for r in rules[s.id]]}
        )
        for s in surveys
    ]


@router.get("/surveys/scores", response_model=list[ScoreRow], summary="Scores by group")
async def scores(
    principal: ApiUser,
    db: Db,
    kind: Annotated[str, Query(description="nps | csat | ces | custom")] = "nps",
    group: Annotated[
        str | None, Query(description="team | agent | channel | category | month | week | customer")
    ] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Per group: n and the score; NPS with its standard error and 95% interval, CES with
    its mean and per cent easy; and the response rate of the surveys sent."""
    return await service.score_table(db, kind=kind, group=group, since=since, until=until)


@router.get("/surveys/responses", response_model=list[ResponseRead], summary="Answers")
async def responses(
    principal: ApiUser,
    db: Db,
    kind: str | None = None,
    customer_id: int | None = None,
    ticket_id: int | None = None,
    team_id: int | None = None,
    agent_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    detractors: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: int | None = None,
) -> list[ResponseRead]:
    flt = service.ResponseFilter(
        kind=kind,
        customer_id=customer_id,
        ticket_id=ticket_id,
        team_id=team_id,
        agent_id=agent_id,
        since=since,
        until=until,
        detractors_only=detractors,
    )
    rows = await service.list_responses(db, flt, limit=limit, before_id=before_id)
    return [ResponseRead.model_validate(r) for r in rows]


@router.get(
    "/customers/{customer_id}/surveys",
    response_model=CustomerSurveys,
    summary="A customer's answers and their NPS, CSAT and CES",
)
async def customer_surveys(customer_id: int, principal: ApiUser, db: Db) -> CustomerSurveys:
    found = await service.customer_surveys(db, customer_id)
    return CustomerSurveys(
        customer_id=customer_id,
        responses=[ResponseRead.model_validate(r) for r in found["responses"]],
        scores=found["scores"],
    )


@router.get("/surveys", response_model=list[SurveyRead], summary="Surveys and their rules")
async def list_surveys(principal: ApiUser, db: Db) -> list[SurveyRead]:
    return await _read(db, await service.list_surveys(db))


@router.post(
    "/surveys",
    response_model=SurveyRead,
    status_code=status.HTTP_201_CREATED,
    responses={**REFUSED, 409: {"description": "The name is taken"}},
)
async def create_survey(body: SurveyCreate, principal: ApiAdmin, db: Db) -> SurveyRead:
    survey = await service.create_survey(db, actor=principal.actor, **body.model_dump())
    return (await _read(db, [survey]))[0]


@router.get("/surveys/{survey_id}", response_model=SurveyRead)
async def get_survey(survey_id: int, principal: ApiUser, db: Db) -> SurveyRead:
    return (await _read(db, [await service.get_survey(db, survey_id)]))[0]


@router.patch(
    "/surveys/{survey_id}",
    response_model=SurveyRead,
    responses={**REFUSED, 409: {"description": "The name is taken"}},
)
async def update_survey(
    survey_id: int, body: SurveyUpdate, principal: ApiAdmin, db: Db
) -> SurveyRead:
    survey = await service.get_survey(db, survey_id)
    await service.update_survey(
        db, survey, changes=body.model_dump(exclude_unset=True), actor=principal.actor
    )
    return (await _read(db, [survey]))[0]


@router.post(
    "/surveys/{survey_id}/rules",
    response_model=RuleRead,
    status_code=status.HTTP_201_CREATED,
    responses=REFUSED,
)
async def create_rule(survey_id: int, body: RuleCreate, principal: ApiAdmin, db: Db) -> RuleRead:
    survey = await service.get_survey(db, survey_id)
    rule = await service.create_rule(db, survey, actor=principal.actor, **body.model_dump())
    return RuleRead.model_validate(rule)


@router.get("/surveys/rules/{rule_id}", response_model=RuleRead, summary="A sending rule")
async def get_rule(rule_id: int, principal: ApiUser, db: Db, response: Response) -> RuleRead:
    rule = await service.get_rule(db, rule_id)
    response.headers["ETag"] = etag(rule.version)
    return RuleRead.model_validate(rule)


@router.patch(
    "/surveys/rules/{rule_id}",
    response_model=RuleRead,
    summary="Change a sending rule (If-Match or `version`)",
    responses={
        **REFUSED,
        412: {"description": "Changed by someone else (send the version you read)"},
        428: {"description": "No version sent"},
    },
)
async def update_rule(
    rule_id: int,
    body: RuleUpdate,
    principal: ApiAdmin,
    db: Db,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> RuleRead:
    expected = parse_if_match(if_match, body.version)
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    for key in list(changes):
        if changes[key] is None:  # null: leave as it is (an empty list clears a filter)
            changes.pop(key)
    rule = await service.update_rule(
        db,
        await service.get_rule(db, rule_id),
        expected_version=expected,
        changes=changes,
        actor=principal.actor,
    )
    response.headers["ETag"] = etag(rule.version)
    return RuleRead.model_validate(rule)


@router.delete("/surveys/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: int, principal: ApiAdmin, db: Db) -> Response:
    await service.delete_rule(db, await service.get_rule(db, rule_id), actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- customers: rating their own solved request ---------------------------------------------


@router.get(
    "/portal/tickets/{ticket_id}/rating",
    response_model=list[RatingQuestion],
    tags=["portal"],
    summary="The rating questions of my solved request",
)
async def rating_questions(ticket_id: int, customer: ApiCustomer, db: Db) -> list[in_place.Offer]:
    """One question per survey kind the desk asks, with the answer given so far; empty
    while the request is not solved. Another customer's request: 404."""
    ticket = await portal_requests.get_visible(db, customer, ticket_id)
    if ticket.requester_id != customer.id:
        raise NotFound(in_place.NO_SUCH_REQUEST)
    return await in_place.portal_offers(db, customer.id, ticket)


@router.post(
    "/portal/tickets/{ticket_id}/rating",
    response_model=RatingRead,
    tags=["portal"],
    summary="Rate my solved request (again: changes the answer)",
    responses={
        **REFUSED,
        404: {"description": "No such request of yours, or no survey of that kind"},
        409: {"description": "The request is not solved yet"},
    },
)
async def rate_request(
    ticket_id: int, body: RatingCreate, customer: ApiCustomer, db: Db
) -> RatingRead:
    ticket = await portal_requests.get_visible(db, customer, ticket_id)
    in_place.check_own_solved(customer.id, ticket)
    response = await in_place.rate(
        db, ticket, kind=body.kind, score=body.score, comment=body.comment, source="portal"
    )
    return RatingRead.model_validate(response)
