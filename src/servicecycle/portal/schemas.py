"""API shapes of the customer portal: what a customer may see of a request, nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinkRequest(Strict):
    email: str = Field(max_length=320, examples=["dana@example.com"])


class LinkRequested(BaseModel):
    status: Literal["sent_if_known"] = Field(
        description="Always the same, whether or not the address belongs to a customer"
    )


class SessionCreate(Strict):
    """Either the token of a sign-in link, or an e-mail address and password."""

    link_token: str | None = Field(default=None, max_length=2000)
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)


class SessionCreated(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer scp_...`; shown once")
    customer_id: int
    name: str


class UploadRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    content_type: str
    size: int


class FileRead(UploadRead):
    content_id: str | None = Field(
        default=None, description="The Content-ID the message's HTML names it by (`cid:...`)"
    )
    inline: bool = Field(default=False, description="A picture shown in the message's text")


class MessageRead(BaseModel):
    id: int
    author: Literal["customer", "support"]
    body_html: str
    body_text: str
    created_at: datetime
    files: list[FileRead] = Field(
        default_factory=list, description="Download: `GET /portal/tickets/{id}/files/{file id}`"
    )


class RequestRead(BaseModel):
    id: int = Field(description="The request (ticket) number")
    subject: str
    status: str
    channel: str
    created_at: datetime
    updated_at: datetime
    custom: dict[str, Any] = Field(description="Values of the public fields only")


class RequestDetail(RequestRead):
    messages: list[MessageRead] = Field(description="The public conversation (no notes)")


class RequestCreate(Strict):
    subject: str = Field(max_length=300)
    description: str = Field(max_length=100_000)
    custom: dict[str, Any] = Field(default_factory=dict, description="Public fields, by key")
    attachment_ids: list[int] = Field(
        default_factory=list, max_length=20, description="Files from `POST /portal/uploads`"
    )


class ReplyCreate(Strict):
    body: str = Field(max_length=100_000)
    attachment_ids: list[int] = Field(
        default_factory=list, max_length=20, description="Files from `POST /portal/uploads`"
    )


class FieldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    label: str
    kind: str
    options: list[str]


class CompanySharing(Strict):
    shared: bool = Field(description="The company's people see each other's requests")
