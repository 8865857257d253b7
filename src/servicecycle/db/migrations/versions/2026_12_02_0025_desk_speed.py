"""Configuration versions: one number per domain whose configuration every event reads
(automation rules, SLA policies and calendars, webhook subscriptions), changed with the
configuration, so each server process can keep a copy and know when it is stale.

The numbers come from one sequence: a rolled-back change never hands its number to a
committed one (sequences are not transactional), so a copy made under a number is never
taken for a different configuration.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE config_versions_seq")
    op.create_table(
        "config_versions",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column(
            "version",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("nextval('config_versions_seq')"),
        ),
    )
    op.execute("INSERT INTO config_versions (name) VALUES ('automation'), ('sla'), ('webhooks')")


def downgrade() -> None:
    op.drop_table("config_versions")
    op.execute("DROP SEQUENCE config_versions_seq")
