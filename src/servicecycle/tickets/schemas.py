"""API shapes of the tickets domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["new", "open", "pending", "on-hold", "solved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Channel = Literal["email", "web", "chat", "api", "phone", "portal"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The ticket number")
    subject: str
    status: Status
    priority: Priority
    type: str | None
    channel: str
    requester_id: int
    assignee_id: int | None
    team_id: int | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    first_reply_at: datetime | None
    solved_at: datetime | None
    custom: dict[str, Any] = Field(description="Values of the admin-defined fields, by key")
    version: int


class RequesterRef(Strict):
    """An existing customer by id, or one found (or created) by e-mail."""

    id: int | None = None
    email: str | None = Field(default=None, max_length=320)
    name: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def one_way(self) -> RequesterRef:
        if (self.id is None) == (self.email is None):
            raise ValueError("give either id or email")
        return self


class TicketCreate(Strict):
    subject: str = Field(max_length=300, examples=["My parcel has not arrived"])
    requester: RequesterRef
    body: str | None = Field(default=None, description="Plain text", examples=["Order 5521 ..."])
    body_html: str | None = Field(default=None, description="HTML; sanitised before it is stored")
    channel: Channel = "api"
    author: Literal["customer", "agent"] = Field(
        default="customer", description="Who wrote the first message: the customer, or you"
    )
    priority: Priority = "normal"
    type: str | None = Field(default=None, max_length=80)
    tags: list[str] = Field(default_factory=list, max_length=50)
    assignee_id: int | None = None
    team_id: int | None = None
    custom: dict[str, Any] = Field(default_factory=dict, examples=[{"order_number": "5521"}])


class TicketUpdate(Strict):
    version: int | None = Field(default=None, description="Current version; or send If-Match")
    subject: str | None = Field(default=None, max_length=300)
    status: Status | None = None
    priority: Priority | None = None
    type: str | None = Field(default=None, max_length=80)
    tags: list[str] | None = Field(default=None, max_length=50)
    assignee_id: int | None = None
    team_id: int | None = None
    custom: dict[str, Any] | None = Field(default=None, description="Keys to set; null clears one")


class TicketPage(BaseModel):
    items: list[TicketRead]
    next_cursor: str | None


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = Field(
        default=None, description="The Content-ID a message's HTML names it by (`cid:...`)"
    )
    inline: bool = Field(default=False, description="A picture shown in the message's text")
    url: str = ""


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: int
    public: bool
    author_type: str
    author_user_id: int | None
    author_customer_id: int | None
    channel: str
    body_html: str = Field(description="Sanitised HTML")
    body_text: str
    created_at: datetime
    attachments: list[AttachmentRead] = Field(default_factory=list)


class MessageCreate(Strict):
    kind: Literal["reply", "note"] = Field(description="A public reply, or an internal note")
    body: str | None = Field(default=None, description="Plain text")
    body_html: str | None = Field(default=None, description="HTML; sanitised before it is stored")
    status: Status | None = Field(default=None, description="Set the ticket's status with a reply")
    version: int | None = Field(default=None, description="Refuse if the ticket changed since")
    attachment_ids: list[int] = Field(
        default_factory=list, max_length=20, description="Ids from POST /api/v1/uploads"
    )


class ViewCount(BaseModel):
    key: str = Field(description="A built-in view's key, or saved:<id>")
    name: str
    count: int = Field(description="Tickets in the view, counted up to 10,000")
    count_capped: bool = Field(
        default=False, description="More tickets than `count`: show it as 10,000+"
    )
    shared: bool = True


class SavedViewCreate(Strict):
    name: str = Field(max_length=120, examples=["Urgent billing"])
    filters: dict[str, Any] = Field(
        examples=[{"statuses": ["new", "open"], "priority": "urgent", "team_id": 2}],
        description="statuses, assignee_id, unassigned, team_id, tag, priority, channel, "
        "requester_id, sort",
    )
    shared: bool = Field(default=False, description="Visible to everyone (admins only)")


class ViewerRead(BaseModel):
    user_id: int
    name: str
    replying: bool


class Presence(Strict):
    replying: bool = False


class TicketMerge(Strict):
    into_id: int = Field(description="The ticket that keeps every message")


class TicketSplit(Strict):
    message_ids: list[int] = Field(min_length=1, max_length=500)
    subject: str = Field(max_length=300)


class TicketLinkCreate(Strict):
    linked_id: int


class TicketRelations(BaseModel):
    links: list[dict[str, Any]] = Field(description="[{ticket_id, kind}]")
    follower_ids: list[int]


class CustomerMerge(Strict):
    into_id: int = Field(description="The customer who keeps everything")


class TicketHitRead(BaseModel):
    id: int
    subject: str
    status: Status
    priority: Priority
    requester_id: int
    assignee_id: int | None
    rank: float
    subject_html: str = Field(description="The subject, escaped, hits in <mark>")
    snippet_html: str = Field(description="Best matching message passage, escaped, hits in <mark>")


class CustomerHitRead(BaseModel):
    id: int
    name: str
    identity: str | None
    score: float


class SearchResults(BaseModel):
    tickets: list[TicketHitRead]
    customers: list[CustomerHitRead]


class BulkChanges(Strict):
    status: Status | None = None
    priority: Priority | None = None
    assignee_id: int | None = None
    team_id: int | None = None


class BulkUpdate(Strict):
    ids: list[int] = Field(min_length=1, max_length=500, examples=[[1001, 1002]])
    changes: BulkChanges = Field(default_factory=BulkChanges)
    add_tags: list[str] = Field(default_factory=list, max_length=50)
    remove_tags: list[str] = Field(default_factory=list, max_length=50)


FieldKind = Literal["text", "number", "date", "dropdown", "checkbox"]


class CustomFieldRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    label: str
    kind: FieldKind
    options: list[str]
    required: bool = Field(description="Must be filled in before the ticket is solved")
    public: bool = Field(description="Shown on the customer's request form")
    active: bool
    version: int


class CustomFieldCreate(Strict):
    key: str = Field(max_length=60, examples=["order_number"])
    label: str = Field(max_length=120, examples=["Order number"])
    kind: FieldKind
    options: list[str] = Field(default_factory=list, max_length=200)
    required: bool = False
    public: bool = False


class CustomFieldUpdate(Strict):
    version: int | None = None
    label: str | None = Field(default=None, max_length=120)
    options: list[str] | None = Field(default=None, max_length=200)
    required: bool | None = None
    public: bool | None = None
    active: bool | None = None
