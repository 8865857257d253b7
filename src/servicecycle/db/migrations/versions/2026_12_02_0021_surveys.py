"""Surveys: CSAT, NPS and CES questions, sending rules, invitations and answers.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("question", sa.String(500), nullable=False),
        sa.Column("why_question", sa.String(500), server_default="", nullable=False),
        sa.Column("scale_min", sa.Integer(), nullable=False),
        sa.Column("scale_max", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("kind IN ('csat', 'nps', 'ces', 'custom')", name="ck_surveys_kind"),
        sa.CheckConstraint("scale_min < scale_max", name="ck_surveys_scale"),
        sa.PrimaryKeyConstraint("id", name="pk_surveys"),
        sa.UniqueConstraint("name", name="uq_surveys_name"),
    )
    op.create_table(
        "survey_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "survey_id",
            sa.Integer(),
            sa.ForeignKey(
                "surveys.id", ondelete="CASCADE", name="fk_survey_rules_survey_id_surveys"
            ),
            nullable=False,
        ),
        sa.Column("delay_hours", sa.Integer(), server_default="24", nullable=False),
        sa.Column("channels", postgresql.ARRAY(sa.String(20)), server_default="{}", nullable=False),
        sa.Column("tiers", postgresql.ARRAY(sa.String(40)), server_default="{}", nullable=False),
        sa.Column("segments", postgresql.ARRAY(sa.String(80)), server_default="{}", nullable=False),
        sa.Column("throttle_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("delay_hours >= 0", name="ck_survey_rules_delay"),
        sa.CheckConstraint("throttle_days >= 0", name="ck_survey_rules_throttle"),
        sa.PrimaryKeyConstraint("id", name="pk_survey_rules"),
    )
    op.create_index("ix_survey_rules_survey_id", "survey_rules", ["survey_id"])
    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "survey_id",
            sa.Integer(),
            sa.ForeignKey(
                "surveys.id", ondelete="CASCADE", name="fk_survey_invitations_survey_id_surveys"
            ),
            nullable=False,
        ),
        sa.Column(
            "rule_id",
            sa.Integer(),
            sa.ForeignKey(
                "survey_rules.id",
                ondelete="SET NULL",
                name="fk_survey_invitations_rule_id_survey_rules",
            ),
        ),
        sa.Column(
            "ticket_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "tickets.id", ondelete="CASCADE", name="fk_survey_invitations_ticket_id_tickets"
            ),
            nullable=False,
        ),
        sa.Column(
            "customer_id",
            sa.BigInteger(),
            sa.ForeignKey("customers.id", name="fk_survey_invitations_customer_id_customers"),
            nullable=False,
        ),
        sa.Column(
            "agent_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id", ondelete="SET NULL", name="fk_survey_invitations_agent_id_users"
            ),
        ),
        sa.Column(
            "team_id",
            sa.Integer(),
            sa.ForeignKey(
                "teams.id", ondelete="SET NULL", name="fk_survey_invitations_team_id_teams"
            ),
        ),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("category", sa.String(80)),
        sa.Column("throttle_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(20), server_default="scheduled", nullable=False),
        sa.Column("solved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("skip_reason", sa.String(200)),
        sa.Column("outbound_id", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'sent', 'skipped')", name="ck_survey_invitations_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_survey_invitations"),
        sa.UniqueConstraint("survey_id", "ticket_id", name="uq_survey_invitations_survey_ticket"),
    )
    op.create_index(
        "ix_survey_invitations_due",
        "survey_invitations",
        ["due_at"],
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_survey_invitations_customer_sent", "survey_invitations", ["customer_id", "sent_at"]
    )
    op.create_index("ix_survey_invitations_ticket_id", "survey_invitations", ["ticket_id"])
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "invitation_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "survey_invitations.id",
                ondelete="CASCADE",
                name="fk_survey_responses_invitation_id_survey_invitations",
            ),
            nullable=False,
        ),
        sa.Column(
            "survey_id",
            sa.Integer(),
            sa.ForeignKey(
                "surveys.id", ondelete="CASCADE", name="fk_survey_responses_survey_id_surveys"
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column(
            "ticket_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "tickets.id", ondelete="CASCADE", name="fk_survey_responses_ticket_id_tickets"
            ),
            nullable=False,
        ),
        sa.Column(
            "customer_id",
            sa.BigInteger(),
            sa.ForeignKey("customers.id", name="fk_survey_responses_customer_id_customers"),
            nullable=False,
        ),
        sa.Column(
            "agent_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id", ondelete="SET NULL", name="fk_survey_responses_agent_id_users"
            ),
        ),
        sa.Column(
            "team_id",
            sa.Integer(),
            sa.ForeignKey(
                "teams.id", ondelete="SET NULL", name="fk_survey_responses_team_id_teams"
            ),
        ),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("category", sa.String(80)),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_survey_responses"),
        sa.UniqueConstraint("invitation_id", name="uq_survey_responses_invitation_id"),
    )
    op.create_index(
        "ix_survey_responses_kind_answered", "survey_responses", ["kind", "answered_at"]
    )
    op.create_index(
        "ix_survey_responses_customer", "survey_responses", ["customer_id", "answered_at"]
    )
    op.create_index("ix_survey_responses_ticket_id", "survey_responses", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("survey_responses")
    op.drop_table("survey_invitations")
    op.drop_table("survey_rules")
    op.drop_table("surveys")
