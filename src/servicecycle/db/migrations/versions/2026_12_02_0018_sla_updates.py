"""SLA: periodic-update clocks and the changes the standards issue still needed.

Periodic-update clocks are rows of ``sla_clocks`` like the other targets, and deleting
calendars and policies uses the existing foreign keys. The one change: the sweep's warning
index also holds ``due_at``, so the warning walk (which locks as it goes, for SKIP LOCKED)
passes over clocks that are already due without reading each from the table.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


RUNNING_UNWARNED = "state = 'running' AND warned_at IS NULL"


def _warn_index(columns: list[str]) -> None:
    op.drop_index(
        "ix_sla_clocks_warn_at_running",
        table_name="sla_clocks",
        postgresql_where=sa.text(RUNNING_UNWARNED),
    )
    op.create_index(
        "ix_sla_clocks_warn_at_running",
        "sla_clocks",
        columns,
        unique=False,
        postgresql_where=sa.text(RUNNING_UNWARNED),
    )


def upgrade() -> None:
    _warn_index(["warn_at", "due_at"])


def downgrade() -> None:
    _warn_index(["warn_at"])
