"""API shapes of the auth domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servicecycle.auth.models import Role, Scope


class Strict(BaseModel):
    """Unknown fields are an error (422 naming them), never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    availability: Literal["online", "away", "offline"]
    capacity: int
    skills: dict[str, int]
    last_login_at: datetime | None
    created_at: datetime
    version: int


class UserCreate(Strict):
    email: str = Field(max_length=320, examples=["ana@example.com"])
    name: str = Field(min_length=1, max_length=200, examples=["Ana Lima"])
    role: Role = Field(examples=["agent"])
    password: str | None = Field(default=None, max_length=1024)


class UserUpdate(Strict):
    version: int | None = Field(default=None, description="Current version; or send If-Match")
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    capacity: int | None = Field(default=None, description="Most open tickets routed to them")
    skills: dict[str, int] | None = Field(default=None, examples=[{"billing": 3, "returns": 1}])


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None


class TeamRead(BaseModel):
    id: int
    name: str
    description: str
    member_ids: list[int]
    routing: Literal["manual", "round_robin", "least_loaded", "skills"] = "manual"


class TeamUpdate(Strict):
    routing: Literal["manual", "round_robin", "least_loaded", "skills"]


class Availability(Strict):
    status: Literal["online", "away", "offline"]


class TeamCreate(Strict):
    name: str = Field(min_length=1, max_length=120, examples=["Billing"])
    description: str = Field(default="", max_length=2000)


class TeamMemberAdd(Strict):
    user_id: int


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=120, examples=["CRM sync"])
    scopes: list[Scope] = Field(min_length=1, examples=[["read", "write"]])
    expires_at: datetime | None = None


class TokenCreated(TokenRead):
    token: str = Field(description="The secret; shown only in this response")
