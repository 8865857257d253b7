"""Tables of the chat domain: a live conversation rides on a ticket of channel ``chat``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base
from servicecycle.kit import clock

STATES = ("waiting", "active", "ended", "missed")
LIVE_STATES = ("waiting", "active")


class ChatSession(Base):
    """One visitor's conversation: the ticket holds the lines, this row the live state.

    ``visitor_id`` is the id inside the visitor's signed token; only a socket presenting
    that token sees this chat."""

    __tablename__ = "chat_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    origin: Mapped[str | None] = mapped_column(String(300))
    # a keyed hash of the visitor's address: limits new chats per address, stores no IP
    client_key: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    taken_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        CheckConstraint("state IN ('waiting', 'active', 'ended', 'missed')", name="state"),
        Index("uq_chat_sessions_ticket_id", "ticket_id", unique=True),
        Index("ix_chat_sessions_visitor_id", "visitor_id", "id"),
        Index("ix_chat_sessions_client_key", "client_key", "started_at"),
        Index(
            "ix_chat_sessions_live",
            "state",
            "started_at",
            postgresql_where=text("state IN ('waiting', 'active')"),
        ),
    )


class ChatSettings(Base):
    """What the widget says: one row (id 1), written from the admin page."""

    __tablename__ = "chat_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    greeting: Mapped[str] = mapped_column(Text)
    offline_text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
