"""API shapes of webhooks. The secret appears only in ``SubscriptionCreated`` and
``SecretRotated``; every other shape leaves it out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servicecycle.webhooks.kinds import CATALOGUE


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    url: str
    kinds: list[str]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionRead):
    secret: str = Field(
        description="The signing secret, shown this once; store it at the receiver",
        examples=["whsec_Hf3k0…"],
    )


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret, shown this once")


KINDS_HELP = (
    "Event kinds to receive: exact kinds, `*` for all, or a prefix such as `ticket.*`. "
    f"Known kinds: {', '.join(CATALOGUE)}. An empty list receives only pings and rule calls."
)


class SubscriptionCreate(Strict):
    name: str = Field(max_length=120, examples=["CRM sync"])
    url: str = Field(max_length=2000, examples=["https://crm.example.com/hooks/servicecycle"])
    kinds: list[str] = Field(description=KINDS_HELP, examples=[["ticket.*", "sla.breached"]])
    enabled: bool = True
    description: str = Field(default="", max_length=2000, examples=["Mirror tickets in the CRM"])


class SubscriptionUpdate(Strict):
    name: str | None = Field(default=None, max_length=120)
    url: str | None = Field(default=None, max_length=2000)
    kinds: list[str] | None = Field(default=None, description=KINDS_HELP)
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=2000)


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    delivery_id: str = Field(description="Sent as `Servicecycle-Delivery`; kept on redelivery")
    subscription_id: int
    event_id: int | None
    kind: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response_code: int | None
    response_excerpt: str | None = Field(description="The first 1,000 characters of the answer")
    error: str | None
    duration_ms: int | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The JSON body sent")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class InboundRequester(Strict):
    email: str = Field(max_length=320, examples=["ada@example.com"])
    name: str | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])


class InboundTicket(Strict):
    subject: str = Field(min_length=1, max_length=300, examples=["Order 1042 arrived damaged"])
    body: str = Field(min_length=1, max_length=1_000_000, examples=["The box was crushed."])
    requester: InboundRequester
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    tags: list[str] = Field(default_factory=list, max_length=50, examples=[["shop", "damage"]])
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The sender's id: the same one twice from one source gives the same ticket",
        examples=["order-1042-complaint"],
    )
    custom_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of the desk's custom ticket fields, by key",
        examples=[{"order_number": "1042"}],
    )


class InboundResult(BaseModel):
    ticket_id: int
    created: bool = Field(description="False when the external id was seen before")
    status: str
    source: str
    external_id: str | None
