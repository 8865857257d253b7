"""Mailboxes: IMAP accounts and SMTP listener addresses that mail arrives through.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=12), server_default="imap", nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(length=10), server_default="ssl", nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password_encrypted", sa.Text(), nullable=False),
        sa.Column("folder", sa.String(length=200), server_default="INBOX", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("poll_minutes", sa.Integer(), server_default="1", nullable=False),
        sa.Column("uid_validity", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_uid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("unread_until", sa.BigInteger(), nullable=True),
        sa.Column(
            "failing",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("polling_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("kind IN ('imap')", name=op.f("ck_mailboxes_kind")),
        sa.CheckConstraint(
            "security IN ('ssl', 'starttls', 'none')", name=op.f("ck_mailboxes_security")
        ),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_mailboxes_port")),
        sa.CheckConstraint(
            "poll_minutes BETWEEN 1 AND 1440", name=op.f("ck_mailboxes_poll_minutes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("address", name=op.f("uq_mailboxes_address")),
        sa.UniqueConstraint("name", name=op.f("uq_mailboxes_name")),
    )
    op.add_column("inbound_mails", sa.Column("mailbox_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_inbound_mails_mailbox_id_mailboxes"),
        "inbound_mails",
        "mailboxes",
        ["mailbox_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_inbound_mails_mailbox_id"), "inbound_mails", ["mailbox_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_inbound_mails_mailbox_id"), table_name="inbound_mails")
    op.drop_constraint(
        op.f("fk_inbound_mails_mailbox_id_mailboxes"), "inbound_mails", type_="foreignkey"
    )
    op.drop_column("inbound_mails", "mailbox_id")
    op.drop_table("mailboxes")
