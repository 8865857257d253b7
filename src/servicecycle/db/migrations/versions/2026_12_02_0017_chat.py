"""Live chat: conversations between visitors and agents.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("visitor_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(300), nullable=True),
        sa.Column("client_key", sa.String(64), nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('waiting', 'active', 'ended', 'missed')", name="ck_chat_sessions_state"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name="fk_chat_sessions_ticket_id_tickets",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["users.id"], name="fk_chat_sessions_agent_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chat_sessions"),
    )
    op.create_index("uq_chat_sessions_ticket_id", "chat_sessions", ["ticket_id"], unique=True)
    op.create_index("ix_chat_sessions_visitor_id", "chat_sessions", ["visitor_id", "id"])
    op.create_index("ix_chat_sessions_client_key", "chat_sessions", ["client_key", "started_at"])
    op.create_index(
        "ix_chat_sessions_live",
        "chat_sessions",
        ["state", "started_at"],
        postgresql_where=sa.text("state IN ('waiting', 'active')"),
    )
    op.create_table(
        "chat_settings",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("greeting", sa.Text(), nullable=False),
        sa.Column("offline_text", sa.Text(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name="ck_chat_settings_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_chat_settings"),
    )


def downgrade() -> None:
    op.drop_table("chat_settings")
    op.drop_index("ix_chat_sessions_live", table_name="chat_sessions")
    op.drop_index("ix_chat_sessions_client_key", table_name="chat_sessions")
    op.drop_index("ix_chat_sessions_visitor_id", table_name="chat_sessions")
    op.drop_index("uq_chat_sessions_ticket_id", table_name="chat_sessions")
    op.drop_table("chat_sessions")
