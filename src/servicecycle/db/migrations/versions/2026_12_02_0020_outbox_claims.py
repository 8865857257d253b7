"""Outbox claims: a mail is marked sending (with a token and a lease) before SMTP is spoken.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbound_mails", sa.Column("claim_token", sa.String(length=32), nullable=True))
    op.add_column(
        "outbound_mails", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_outbound_mails_sending",
        "outbound_mails",
        ["claimed_until"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    # a claim in flight goes back to the queue: it is sent again, with its Message-ID
    op.execute("UPDATE outbound_mails SET status = 'queued' WHERE status = 'sending'")
    op.drop_index(
        "ix_outbound_mails_sending",
        table_name="outbound_mails",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_column("outbound_mails", "claimed_until")
    op.drop_column("outbound_mails", "claim_token")
