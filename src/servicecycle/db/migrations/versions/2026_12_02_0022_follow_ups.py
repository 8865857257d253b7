"""Follow-ups: scheduled contacts after (or during) service, and detractor recovery.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("ticket_id", sa.BigInteger(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), server_default="other", nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("outcome_note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by_type", sa.String(length=20), nullable=False),
        sa.Column("created_by_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_type", sa.String(length=40), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "kind IN ('check_in', 'recovery', 'other')", name=op.f("ck_follow_ups_kind")
        ),
        sa.CheckConstraint(
            "state IN ('open', 'done', 'cancelled')", name=op.f("ck_follow_ups_state")
        ),
        sa.CheckConstraint(
            "state <> 'done' OR outcome IS NOT NULL", name=op.f("ck_follow_ups_done_has_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_follow_ups_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_follow_ups_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_follow_ups_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
    )
    op.create_index("ix_follow_ups_open_due", "follow_ups", ["due_at", "id"], postgresql_where=OPEN)
    op.create_index(
        "ix_follow_ups_open_owner_due",
        "follow_ups",
        ["owner_id", "due_at", "id"],
        postgresql_where=OPEN,
    )
    op.create_index("ix_follow_ups_ticket", "follow_ups", ["ticket_id"])
    op.create_index("ix_follow_ups_customer", "follow_ups", ["customer_id"])
    op.create_index("ix_follow_ups_kind_created", "follow_ups", ["kind", "created_at"])
    op.create_index(
        "uq_follow_ups_source",
        "follow_ups",
        ["source_type", "source_id"],
        unique=True,
        postgresql_where=sa.text("source_id IS NOT NULL"),
    )
    op.create_table(
        "follow_up_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recovery_hours", sa.Integer(), server_default="24", nullable=False),
        sa.Column("check_in_template", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_follow_up_settings_single_row")),
        sa.CheckConstraint(
            "recovery_hours BETWEEN 1 AND 720", name=op.f("ck_follow_up_settings_recovery_hours")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_settings")),
    )


def downgrade() -> None:
    op.drop_table("follow_up_settings")
    op.drop_table("follow_ups")  # its indexes go with it
