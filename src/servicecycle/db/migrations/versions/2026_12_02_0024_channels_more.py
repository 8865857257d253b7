"""Channels (issue 5): IMAP IDLE watching — a watcher's lease on a mailbox and what the
server's capabilities said (IDLE offered, or polling only); an index for the mail-loop guard
(recent acknowledgements to one address).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("watched_until", sa.DateTime(timezone=True)))
    op.add_column("mailboxes", sa.Column("watcher", sa.String(64)))
    op.add_column("mailboxes", sa.Column("watch_mode", sa.String(8)))
    op.add_column("mailboxes", sa.Column("watch_checked_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        op.f("ck_mailboxes_watch_mode"), "mailboxes", "watch_mode IN ('idle', 'poll')"
    )
    op.create_index(
        "ix_outbound_mails_acknowledged",
        "outbound_mails",
        ["to_address", "created_at"],
        postgresql_where=sa.text("kind = 'acknowledgement'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_mails_acknowledged", table_name="outbound_mails")
    op.drop_constraint(op.f("ck_mailboxes_watch_mode"), "mailboxes", type_="check")
    for column in ("watch_checked_at", "watch_mode", "watcher", "watched_until"):
        op.drop_column("mailboxes", column)
