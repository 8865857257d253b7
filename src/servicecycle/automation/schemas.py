"""API shapes of the automation domain."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: Literal["trigger", "time"]
    active: bool
    position: int
    events: list[str]
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    disabled_reason: str | None = Field(description="Why the system switched the rule off")
    version: int


class RuleCreate(Strict):
    name: str = Field(max_length=120, examples=["Escalate first-reply breaches"])
    kind: Literal["trigger", "time"]
    events: list[str] = Field(default_factory=list, examples=[["sla.breached"]])
    conditions: list[dict[str, Any]] = Field(
        default_factory=list,
        examples=[[{"field": "sla.metric", "op": "is", "value": "first_reply"}]],
    )
    actions: list[dict[str, Any]] = Field(
        description=(
            "Run in order. Besides ticket changes: `notify` {to, text}; `send_email` "
            '{to: "requester" or an address, subject, body} with macro placeholders such as '
            "`{{ticket.number}}`, queued in the mail outbox; `call_webhook` {webhook_id, "
            "payload} posts a signed `rule.webhook_called` delivery to that webhook."
        ),
        examples=[
            [{"type": "set_priority", "value": "urgent"}, {"type": "assign_team", "value": 2}],
            [
                {
                    "type": "send_email",
                    "value": {
                        "to": "requester",
                        "subject": "We are on it: #{{ticket.number}}",
                        "body": "Hi {{customer.first_name}}, your request is escalated.",
                    },
                },
                {
                    "type": "call_webhook",
                    "value": {"webhook_id": 1, "payload": {"note": "#{{ticket.number}} breached"}},
                },
            ],
        ],
    )


class RuleUpdate(Strict):
    version: int | None = None
    name: str | None = Field(default=None, max_length=120)
    active: bool | None = None
    position: int | None = None
    events: list[str] | None = None
    conditions: list[dict[str, Any]] | None = None
    actions: list[dict[str, Any]] | None = None


class DryRun(BaseModel):
    ticket_ids: list[int] = Field(description="Open tickets the conditions match now")
    actions: list[str] = Field(
        default_factory=list,
        description="What the actions would do, in words (a dry run sends and changes nothing)",
    )


class MacroRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    body: str
    public: bool
    actions: list[dict[str, Any]]
    owner_id: int | None
    version: int


class MacroCreate(Strict):
    name: str = Field(max_length=120, examples=["Refund sent"])
    body: str = Field(
        default="",
        max_length=20_000,
        examples=["Hi {{customer.first_name}}, the refund for #{{ticket.number}} is on its way."],
    )
    public: bool = Field(default=True, description="A public reply (else an internal note)")
    actions: list[dict[str, Any]] = Field(
        default_factory=list, examples=[[{"type": "set_status", "value": "solved"}]]
    )
    shared: bool = False


class MacroUpdate(Strict):
    version: int | None = Field(default=None, description="The version read (or If-Match)")
    name: str | None = Field(default=None, max_length=120)
    body: str | None = Field(default=None, max_length=20_000)
    public: bool | None = None
    actions: list[dict[str, Any]] | None = None


class MacroPreview(BaseModel):
    body: str
    public: bool
    actions: list[dict[str, Any]]


class MacroApply(Strict):
    body: str | None = Field(default=None, description="The edited reply; omit to send the preview")
