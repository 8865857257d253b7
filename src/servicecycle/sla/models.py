"""Tables of the service-standards domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base, Timestamped

METRICS = ("first_reply", "next_reply", "periodic_update", "resolution")


class Calendar(Timestamped, Base):
    """Business hours: weekly shifts in a time zone, public holidays and custom closed days."""

    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    zone: Mapped[str] = mapped_column(String(64))
    week: Mapped[dict[str, list[list[str]]]] = mapped_column(JSONB)
    holiday_country: Mapped[str | None] = mapped_column(String(8))
    holiday_region: Mapped[str | None] = mapped_column(String(16))
    closed_days: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class SlaPolicy(Timestamped, Base):
    """Targets for tickets whose fields match ``conditions``; the first active match wins."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    targets: Mapped[dict[str, Any]] = mapped_column(JSONB)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendars.id", ondelete="SET NULL"))
    pause_statuses: Mapped[list[str]] = mapped_column(
        JSONB, server_default='["pending", "on-hold"]'
    )
    warn_minutes: Mapped[int] = mapped_column(Integer, server_default="30")
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class SlaClock(Base):
    """One target running for one ticket: how much time it has used and when it falls due."""

    __tablename__ = "sla_clocks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    metric: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12))  # running | paused | met | breached | cancelled
    target_minutes: Mapped[int] = mapped_column(Integer)
    business: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime]
    running_since: Mapped[datetime | None]
    used_minutes: Mapped[float] = mapped_column(server_default="0")
    due_at: Mapped[datetime | None]
    warn_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "state IN ('running', 'paused', 'met', 'breached', 'cancelled')", name="state"
        ),
        Index("ix_sla_clocks_ticket_id", "ticket_id", "metric"),
        # the sweep reads only clocks that can still warn or breach
        Index("ix_sla_clocks_due_at_running", "due_at", postgresql_where=text("state = 'running'")),
        # due_at too: the warning walk passes over clocks already due without reading them
        Index(
            "ix_sla_clocks_warn_at_running",
            "warn_at",
            "due_at",
            postgresql_where=text("state = 'running' AND warned_at IS NULL"),
        ),
    )
