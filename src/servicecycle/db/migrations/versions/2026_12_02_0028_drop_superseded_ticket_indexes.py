"""Drop the three (…, status, updated_at) ticket indexes that 0013's list indexes superseded
(bench/results/desk.md planned their removal; 0013 added the new ones but kept the old).

No list, count, search or routing plan at 1M tickets chose them once the list indexes
existed (bench/results/explain-1m-after.md): (status, updated_at DESC NULLS LAST, id DESC)
serves a status with an updated_at range in either direction and gives the lists' order, and
the open lists have partial indexes of their own. What they still won: a team or an assignee
with one closed or solved status and no order an index gives (a saved view's count, a search
filter), a few milliseconds at 200,000 tickets. What they cost: every change to a ticket
moves its updated_at, so no update is HOT and each wrote all 15 indexes; now 12.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DROPPED = {
    "ix_tickets_status_updated_at": ["status", "updated_at"],
    "ix_tickets_assignee_status_updated_at": ["assignee_id", "status", "updated_at"],
    "ix_tickets_team_status_updated_at": ["team_id", "status", "updated_at"],
}


def upgrade() -> None:
    for name in _DROPPED:
        op.drop_index(name, table_name="tickets")


def downgrade() -> None:
    for name, columns in _DROPPED.items():
        op.create_index(name, "tickets", columns)
