"""Tables of the followups domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base
from servicecycle.kit import clock

KINDS = ("check_in", "recovery", "other")
STATES = ("open", "done", "cancelled")
# what "done" means; the note says the rest
OUTCOMES = ("resolved", "no_answer", "escalated", "other")


class FollowUp(Base):
    """A planned contact with a customer (usually about a ticket): who, when, why, and how it
    ended."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # null: nobody yet; every agent sees it in "All"
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), server_default="other")
    reason: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), server_default="open")
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_note: Mapped[str] = mapped_column(Text, server_default="")
    # who made it, as the event log names actors: user:<id>, rule:<id>, system:<name>
    created_by_type: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    done_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # what caused it, e.g. ("survey_response", "42") for a recovery
    source_type: Mapped[str | None] = mapped_column(String(40))
    source_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS}", name="kind"),
        CheckConstraint(f"state IN {STATES}", name="state"),
        CheckConstraint("state <> 'done' OR outcome IS NOT NULL", name="done_has_outcome"),
        # the due queue: open ones by due time, for everyone and per owner
        Index("ix_follow_ups_open_due", "due_at", "id", postgresql_where=text("state = 'open'")),
        Index(
            "ix_follow_ups_open_owner_due",
            "owner_id",
            "due_at",
            "id",
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_follow_ups_ticket", "ticket_id"),
        Index("ix_follow_ups_customer", "customer_id"),
        Index("ix_follow_ups_kind_created", "kind", "created_at"),
        # one follow-up per cause: the same survey answer heard twice opens one recovery
        Index(
            "uq_follow_ups_source",
            "source_type",
            "source_id",
            unique=True,
            postgresql_where=text("source_id IS NOT NULL"),
        ),
    )


class FollowUpSettings(Base):
    """The desk's follow-up settings: one row (id 1)."""

    __tablename__ = "follow_up_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recovery_hours: Mapped[int] = mapped_column(Integer, server_default="24")
    # empty: the built-in text (service.DEFAULT_CHECK_IN)
    check_in_template: Mapped[str] = mapped_column(Text, server_default="")
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("recovery_hours BETWEEN 1 AND 720", name="recovery_hours"),
    )
