"""A customer's identities of one kind, oldest first, from one index: (customer_id, kind, id)
in place of (customer_id). The address for a desk's mail ("the customer's first e-mail
identity") was read through the unique (kind, value) index when the table's statistics were
young, walking every e-mail identity per mail; this index answers it in one step and still
serves lookups by customer alone.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_customer_identities_customer_kind",
        "customer_identities",
        ["customer_id", "kind", "id"],
    )
    op.drop_index("ix_customer_identities_customer_id", table_name="customer_identities")


def downgrade() -> None:
    op.create_index("ix_customer_identities_customer_id", "customer_identities", ["customer_id"])
    op.drop_index("ix_customer_identities_customer_kind", table_name="customer_identities")
