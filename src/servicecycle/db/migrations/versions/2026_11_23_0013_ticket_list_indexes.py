"""Indexes for the ticket lists and views, measured at 1,000,000 tickets.

Each matches one ORDER BY updated_at DESC NULLS LAST, id DESC the lists use, so the first
page is an index walk instead of a sort (bench/results/explain-1m-*.md).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('new', 'open', 'pending', 'on-hold') AND merged_into_id IS NULL"
ORDER = "updated_at DESC NULLS LAST, id DESC"
INDEXES = {
    "ix_tickets_open_updated": f"({ORDER}) WHERE {OPEN}",
    "ix_tickets_open_assignee_updated": f"(assignee_id, {ORDER}) WHERE {OPEN}",
    "ix_tickets_open_team_updated": f"(team_id, {ORDER}) WHERE {OPEN}",
    "ix_tickets_solved_solved_at": (
        "(solved_at DESC NULLS LAST, id DESC) WHERE status = 'solved' AND merged_into_id IS NULL"
    ),
    "ix_tickets_updated": f"({ORDER})",
    "ix_tickets_team_updated": f"(team_id, {ORDER})",
    "ix_tickets_assignee_updated": f"(assignee_id, {ORDER})",
    "ix_tickets_status_updated": f"(status, {ORDER})",
}


def upgrade() -> None:
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON tickets {definition}")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
