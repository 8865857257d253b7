"""Tables of the channels domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base
from servicecycle.kit import clock


class InboundMail(Base):
    """Every mail received, whatever became of it: a ticket, a reply, ignored, or rejected."""

    __tablename__ = "inbound_mails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[str | None] = mapped_column(String(998))
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300), server_default="")
    outcome: Mapped[str] = mapped_column(String(20))  # ticket | reply | ignored | rejected
    reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    message_row_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    # the IMAP mailbox it was taken from (None: posted, forwarded, or the mailbox is gone)
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (
        # the same Message-ID never makes two tickets or messages, however often it arrives
        Index(
            "uq_inbound_mails_message_id",
            "message_id",
            unique=True,
            postgresql_where=text("message_id IS NOT NULL"),
        ),
        Index("ix_inbound_mails_received_at", "received_at"),
    )


class MailThread(Base):
    """Which ticket a Message-ID belongs to (mails received and sent), for threading."""

    __tablename__ = "mail_threads"

    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)


class OutboundMail(Base):
    """A mail to send, written in the same transaction as the reply that caused it (an outbox).

    A sender first claims the row (``sending``, a fresh ``claim_token``, a lease until
    ``claimed_until``) and commits, then talks to SMTP, then settles it (``sent``, or back to
    ``queued`` with a later ``next_attempt_at``, or ``failed``). A sender that dies mid-send
    leaves the row ``sending``; once the lease is over it is sent again with the same
    Message-ID (at least once; never a second Message-ID)."""

    __tablename__ = "outbound_mails"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    message_row_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(20))  # reply | acknowledgement
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(400))
    body_text: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str] = mapped_column(Text, server_default="")
    reply_to: Mapped[str | None] = mapped_column(String(320))
    # queued | sending | sent | failed
    status: Mapped[str] = mapped_column(String(12), server_default="queued")
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    sent_at: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_outbound_mails_queued",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
        ),
        # claims whose sender died: sent again once the lease is over
        Index(
            "ix_outbound_mails_sending",
            "claimed_until",
            postgresql_where=text("status = 'sending'"),
        ),
        # the loop guard counts an address's recent acknowledgements
        Index(
            "ix_outbound_mails_acknowledged",
            "to_address",
            "created_at",
            postgresql_where=text("kind = 'acknowledgement'"),
        ),
    )


class Mailbox(Base):
    """An IMAP account the desk polls for new mail, with where the poll has got to.

    The password is stored encrypted (``Keyring.encrypt``) and never leaves the service
    in plain text except to log in. ``uid_validity`` and ``last_seen_uid`` say which mail
    was taken already; ``failing`` holds UIDs whose storing failed, to retry (and how often).
    """

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    kind: Mapped[str] = mapped_column(String(12), server_default="imap")
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    security: Mapped[str] = mapped_column(String(10), server_default="ssl")  # ssl|starttls|none
    username: Mapped[str] = mapped_column(String(320))
    password_encrypted: Mapped[str] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(String(200), server_default="INBOX")
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    poll_minutes: Mapped[int] = mapped_column(server_default="1")
    uid_validity: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_uid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # up to this UID mail is taken only if unread (set by the first poll, or a renumbering)
    unread_until: Mapped[int | None] = mapped_column(BigInteger)
    failing: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    polling_until: Mapped[datetime | None]  # a poller's lease; past means free
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    received_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rejected_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    version: Mapped[int] = mapped_column(server_default="1")  # raised by settings changes only
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    # an IDLE watcher's lease (renewed while it holds the connection; past means nobody
    # watches, and the poll job takes the mail) and which process holds it
    watched_until: Mapped[datetime | None]
    watcher: Mapped[str | None] = mapped_column(String(64))
    # what the server's capabilities said at the last check: idle | poll (None: not yet)
    watch_mode: Mapped[str | None] = mapped_column(String(8))
    watch_checked_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("kind IN ('imap')", name="kind"),
        CheckConstraint("watch_mode IN ('idle', 'poll')", name="watch_mode"),
        CheckConstraint("security IN ('ssl', 'starttls', 'none')", name="security"),
        CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
        CheckConstraint("poll_minutes BETWEEN 1 AND 1440", name="poll_minutes"),
    )
