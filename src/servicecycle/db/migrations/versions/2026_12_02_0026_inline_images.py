"""Inline images: a mail part's Content-ID on its attachment, so the message's HTML can
show ``<img src="cid:...">`` in place (rewritten when it is displayed; the body is kept).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("attachments", sa.Column("content_id", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("attachments", "content_id")
