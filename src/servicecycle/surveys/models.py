"""Tables of the surveys domain: surveys, their sending rules, invitations and responses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base, Timestamped
from servicecycle.kit import clock

KINDS = ("csat", "nps", "ces", "custom")
INVITATION_STATES = ("scheduled", "sent", "skipped")
SOURCES = ("email", "portal", "chat")


class Survey(Timestamped, Base):
    """One question asked after service: its kind fixes the scale (custom: its own)."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    question: Mapped[str] = mapped_column(String(500))
    why_question: Mapped[str] = mapped_column(String(500), server_default="")
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="false")

    __table_args__ = (
        CheckConstraint("kind IN ('csat', 'nps', 'ces', 'custom')", name="kind"),
        CheckConstraint("scale_min < scale_max", name="scale"),
    )


class SurveyRule(Timestamped, Base):
    """When a survey goes out: hours after a ticket is solved, for which channels and
    customers (empty: all), and at most once per customer in ``throttle_days``."""

    __tablename__ = "survey_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    delay_hours: Mapped[int] = mapped_column(Integer, server_default="24")
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(20)), server_default="{}")
    tiers: Mapped[list[str]] = mapped_column(ARRAY(String(40)), server_default="{}")
    segments: Mapped[list[str]] = mapped_column(ARRAY(String(80)), server_default="{}")
    throttle_days: Mapped[int] = mapped_column(Integer, server_default="30")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint("delay_hours >= 0", name="delay"),
        CheckConstraint("throttle_days >= 0", name="throttle"),
        Index("ix_survey_rules_survey_id", "survey_id"),
    )


class SurveyInvitation(Base):
    """One survey for one solved ticket: scheduled, then sent (or skipped, with a reason).
    Who served the customer is copied here when it is scheduled."""

    __tablename__ = "survey_invitations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("survey_rules.id", ondelete="SET NULL"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(80))
    throttle_days: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(20), server_default="scheduled")
    solved_at: Mapped[datetime]
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(200))
    outbound_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('scheduled', 'sent', 'skipped')", name="status"),
        UniqueConstraint("survey_id", "ticket_id", name="uq_survey_invitations_survey_ticket"),
        Index("ix_survey_invitations_due", "due_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_survey_invitations_customer_sent", "customer_id", "sent_at"),
        Index("ix_survey_invitations_ticket_id", "ticket_id"),
    )


class SurveyResponse(Base):
    """A customer's answer: one per invitation (a second click updates it)."""

    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("survey_invitations.id", ondelete="CASCADE"), unique=True
    )
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, server_default="")
    source: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(80))
    answered_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_survey_responses_kind_answered", "kind", "answered_at"),
        Index("ix_survey_responses_customer", "customer_id", "answered_at"),
        Index("ix_survey_responses_ticket_id", "ticket_id"),
    )
