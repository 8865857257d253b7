"""API shapes of the customers domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    value: str


class CustomerRead(BaseModel):
    id: int
    name: str
    company_id: int | None
    tier: str
    segment: str | None
    tags: list[str]
    notes: str
    attributes: dict[str, Any]
    identities: list[IdentityRead]
    merged_into_id: int | None
    created_at: datetime
    version: int


class CustomerCreate(Strict):
    name: str = Field(default="", max_length=200, examples=["Dana Fox"])
    emails: list[str] = Field(default_factory=list, max_length=20, examples=[["dana@example.com"]])
    phones: list[str] = Field(default_factory=list, max_length=20)
    external_ids: list[str] = Field(default_factory=list, max_length=20)
    company_id: int | None = None
    tier: str = Field(default="standard", max_length=40)
    segment: str | None = Field(default=None, max_length=80)
    tags: list[str] = Field(default_factory=list, max_length=50)
    notes: str = Field(default="", max_length=20000)
    attributes: dict[str, Any] = Field(default_factory=dict)


class CustomerUpdate(Strict):
    version: int | None = None
    name: str | None = Field(default=None, max_length=200)
    company_id: int | None = None
    tier: str | None = Field(default=None, max_length=40)
    segment: str | None = Field(default=None, max_length=80)
    tags: list[str] | None = Field(default=None, max_length=50)
    notes: str | None = Field(default=None, max_length=20000)
    attributes: dict[str, Any] | None = None


class IdentityCreate(Strict):
    kind: str = Field(examples=["email"])
    value: str = Field(max_length=320, examples=["dana.fox@work.example"])


class CustomerPage(BaseModel):
    items: list[CustomerRead]
    next_cursor: str | None


class CompanyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    domain: str | None
    tier: str
    version: int


class CompanyCreate(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Acme Ltd"])
    domain: str | None = Field(default=None, max_length=253, examples=["acme.example"])
    tier: str = Field(default="standard", max_length=40)
