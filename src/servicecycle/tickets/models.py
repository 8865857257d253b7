"""Tables of the tickets domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base
from servicecycle.kit import clock

STATUSES = ("new", "open", "pending", "on-hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "web", "chat", "api", "phone", "portal")


_OPEN = "status IN ('new', 'open', 'pending', 'on-hold') AND merged_into_id IS NULL"


def _list_indexes() -> list[Index]:
    """One index per list order (migration 0013; measured in bench/results/explain-1m-*.md)."""

    def newest(*leading: str, column: str = "updated_at") -> list[Any]:
        return [*(text(c) for c in leading), text(f"{column} DESC NULLS LAST"), text("id DESC")]

    def ix(name: str, *leading: str, where: str | None = None, column: str = "updated_at") -> Index:
        return Index(
            name, *newest(*leading, column=column), postgresql_where=text(where) if where else None
        )

    return [
        ix("ix_tickets_open_updated", where=_OPEN),
        ix("ix_tickets_open_assignee_updated", "assignee_id", where=_OPEN),
        ix("ix_tickets_open_team_updated", "team_id", where=_OPEN),
        ix(
            "ix_tickets_solved_solved_at",
            column="solved_at",
            where="status = 'solved' AND merged_into_id IS NULL",
        ),
        ix("ix_tickets_updated"),
        ix("ix_tickets_team_updated", "team_id"),
        ix("ix_tickets_assignee_updated", "assignee_id"),
        ix("ix_tickets_status_updated", "status"),
    ]


class Ticket(Base):
    """A customer's problem. Its ``id`` is the human ticket number (it starts at 1001)."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(start=1001), primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), server_default="new")
    priority: Mapped[str] = mapped_column(String(20), server_default="normal")
    type: Mapped[str | None] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(20))
    requester_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(80)), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    first_reply_at: Mapped[datetime | None]
    solved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    custom: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("setweight(to_tsvector('english', coalesce(subject, '')), 'A')", persisted=True),
        deferred=True,
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('new', 'open', 'pending', 'on-hold', 'solved', 'closed')", name="status"
        ),
        CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="priority"),
        Index("ix_tickets_requester_id", "requester_id", "created_at"),
        Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        Index("ix_tickets_search", "search", postgresql_using="gin"),
        *_list_indexes(),
    )
    # The version counts committed changes: services bump it once per transaction
    # (tickets.service.touch); SQLAlchemy still checks it in every UPDATE's WHERE clause.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class Message(Base):
    """A public reply or an internal note on a ticket, in the order it was added."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    public: Mapped[bool] = mapped_column(Boolean)
    author_type: Mapped[str] = mapped_column(String(20))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(20))
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("setweight(to_tsvector('english', left(body_text, 100000)), 'B')", persisted=True),
        deferred=True,
    )

    __table_args__ = (
        CheckConstraint("author_type IN ('agent', 'customer', 'system')", name="author_type"),
        Index("ix_messages_ticket_id_id", "ticket_id", "id"),
        Index("ix_messages_search", "search", postgresql_using="gin"),
    )


FIELD_KINDS = ("text", "number", "date", "dropdown", "checkbox")


class CustomField(Base):
    """A field admins add to tickets; its values live in ``Ticket.custom`` under ``key``."""

    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    label: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    options: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    required: Mapped[bool] = mapped_column(Boolean, server_default="false")
    public: Mapped[bool] = mapped_column(Boolean, server_default="false")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        CheckConstraint("kind IN ('text', 'number', 'date', 'dropdown', 'checkbox')", name="kind"),
    )
    __mapper_args__ = {"version_id_col": version}


class Attachment(Base):
    """A file on a message (or an upload not yet sent with one). Bytes live in storage."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    uploaded_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(120), unique=True)
    inline: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # a mail part's Content-ID without its <>: the message's HTML shows it as <img src="cid:...">
    content_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (Index("ix_attachments_message_id", "message_id"),)


class AttachmentBlob(Base):
    """File contents when attachments are stored in the database."""

    __tablename__ = "attachment_blobs"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TicketFollower(Base):
    """An agent who is told about a ticket's changes without owning it."""

    __tablename__ = "ticket_followers"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())


LINK_KINDS = ("related", "split_from")


class TicketLink(Base):
    """Two tickets about the same thing; stored once, with the lower id first."""

    __tablename__ = "ticket_links"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    linked_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), server_default="related")
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        CheckConstraint("ticket_id < linked_id", name="ordered"),
        Index("ix_ticket_links_linked_id", "linked_id"),
    )


class SavedView(Base):
    """A named ticket filter: personal (``owner_id``) or shared (admins make those)."""

    __tablename__ = "saved_views"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (Index("ix_saved_views_owner_id", "owner_id"),)


class TicketViewer(Base):
    """Who has a ticket open right now (refreshed while the page is open), for collision
    warnings."""

    __tablename__ = "ticket_viewers"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seen_at: Mapped[datetime]
    replying: Mapped[bool] = mapped_column(Boolean, server_default="false")
