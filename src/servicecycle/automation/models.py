"""Tables of the automation domain."""

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
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base, Timestamped
from servicecycle.kit import clock


class Rule(Timestamped, Base):
    """A trigger (runs on events) or a time rule (runs on a schedule over matching tickets)."""

    __tablename__ = "automation_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # trigger | time
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    events: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (CheckConstraint("kind IN ('trigger', 'time')", name="kind"),)
    __mapper_args__ = {"version_id_col": version}


class RuleFiring(Base):
    """A time rule acted on a ticket in this state of it (its version): never twice."""

    __tablename__ = "automation_firings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("automation_rules.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ticket_version: Mapped[int] = mapped_column(Integer)
    fired_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        Index(
            "uq_automation_firings_rule_ticket_version",
            "rule_id",
            "ticket_id",
            "ticket_version",
            unique=True,
        ),
    )


class Macro(Timestamped, Base):
    """A canned reply with placeholders, plus actions; personal (owner) or shared."""

    __tablename__ = "macros"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text, server_default="")
    public: Mapped[bool] = mapped_column(Boolean, server_default="true")
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}
