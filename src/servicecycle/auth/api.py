"""REST routes for users, teams and API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from servicecycle.auth import service
from servicecycle.auth.deps import ApiAdmin, ApiUser, Db
from servicecycle.auth.schemas import (
    Availability,
    TeamCreate,
    TeamMemberAdd,
    TeamRead,
    TeamUpdate,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from servicecycle.web.concurrency import etag, parse_if_match

router = APIRouter(prefix="/api/v1", tags=["users and teams"])


@router.get("/me", response_model=UserRead, summary="The signed-in user")
async def me(principal: ApiUser) -> UserRead:
    return UserRead.model_validate(principal.user)


@router.put(
    "/me/availability",
    response_model=UserRead,
    summary="Go online (receive routed tickets), away or offline",
)
async def set_availability(body: Availability, principal: ApiUser, db: Db) -> UserRead:
    user = await service.get_user(db, principal.identity.id)
    user = await service.set_availability(db, user, body.status, actor=principal.actor)
    return UserRead.model_validate(user)


@router.get("/users", response_model=UserPage)
async def list_users(
    principal: ApiAdmin,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> UserPage:
    page = await service.list_users(db, limit=limit, cursor=cursor)
    return UserPage(
        items=[UserRead.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, principal: ApiAdmin, db: Db, response: Response
) -> UserRead:
    user = await service.create_user(
        db,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
        actor=principal.actor,
    )
    response.headers["ETag"] = etag(user.version)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return UserRead.model_validate(user)


@router.get("/users/{user_id}", response_model=UserRead)
async def get_user(user_id: int, principal: ApiAdmin, db: Db, response: Response) -> UserRead:
    user = await service.get_user(db, user_id)
    response.headers["ETag"] = etag(user.version)
    return UserRead.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses={
        412: {"description": "The version sent is not the current one"},
        428: {"description": "No version was sent"},
    },
)
async def update_user(
    user_id: int,
    body: UserUpdate,
    principal: ApiAdmin,
    db: Db,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> UserRead:
    expected = parse_if_match(if_match, body.version)
    user = await service.get_user(db, user_id)
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    user = await service.update_user(
        db, user, expected_version=expected, changes=changes, actor=principal.actor
    )
    response.headers["ETag"] = etag(user.version)
    return UserRead.model_validate(user)


@router.get("/teams", response_model=list[TeamRead])
async def list_teams(principal: ApiUser, db: Db) -> list[TeamRead]:
    return [
        TeamRead(
            id=t.id, name=t.name, description=t.description, member_ids=members, routing=t.routing
        )
        for t, members in await service.list_teams(db)
    ]


@router.post("/teams", response_model=TeamRead, status_code=status.HTTP_201_CREATED)
async def create_team(body: TeamCreate, principal: ApiAdmin, db: Db) -> TeamRead:
    team = await service.create_team(
        db, name=body.name, description=body.description, actor=principal.actor
    )
    return TeamRead(id=team.id, name=team.name, description=team.description, member_ids=[])


@router.patch(
    "/teams/{team_id}", response_model=TeamRead, summary="Set how the team's tickets are routed"
)
async def update_team(team_id: int, body: TeamUpdate, principal: ApiAdmin, db: Db) -> TeamRead:
    team = await service.get_team(db, team_id)
    team = await service.set_team_routing(db, team, body.routing, actor=principal.actor)
    return TeamRead(
        id=team.id,
        name=team.name,
        description=team.description,
        routing=team.routing,
        member_ids=await service.team_member_ids(db, team),
    )


@router.post("/teams/{team_id}/members", response_model=TeamRead)
async def add_member(team_id: int, body: TeamMemberAdd, principal: ApiAdmin, db: Db) -> TeamRead:
    team = await service.get_team(db, team_id)
    user = await service.get_user(db, body.user_id)
    await service.add_team_member(db, team, user, actor=principal.actor)
    return TeamRead(
        id=team.id,
        name=team.name,
        description=team.description,
        routing=team.routing,
        member_ids=await service.team_member_ids(db, team),
    )


@router.delete("/teams/{team_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(team_id: int, user_id: int, principal: ApiAdmin, db: Db) -> None:
    team = await service.get_team(db, team_id)
    user = await service.get_user(db, user_id)
    await service.remove_team_member(db, team, user, actor=principal.actor)


@router.get("/tokens", response_model=list[TokenRead], tags=["API tokens"])
async def list_tokens(principal: ApiUser, db: Db) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in await service.list_api_tokens(db, principal.user)]


@router.post(
    "/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["API tokens"]
)
async def create_token(body: TokenCreate, principal: ApiUser, db: Db) -> TokenCreated:
    plain, token = await service.create_api_token(
        db,
        principal.user,
        name=body.name,
        scopes=[s.value for s in body.scopes],
        expires_at=body.expires_at,
        actor=principal.actor,
        within=list(principal.token.scopes) if principal.token is not None else None,
    )
    return TokenCreated(token=plain, **TokenRead.model_validate(token).model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenRead, tags=["API tokens"])
async def revoke_token(token_id: int, principal: ApiUser, db: Db) -> TokenRead:
    token = await service.get_api_token(db, token_id, owner=principal.user)
    token = await service.revoke_api_token(db, token, actor=principal.actor)
    return TokenRead.model_validate(token)
