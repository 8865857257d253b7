"""Tables of the customers domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base, Timestamped
from servicecycle.kit import clock

IDENTITY_KINDS = ("email", "phone", "external")


class Company(Timestamped, Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(253))
    tier: Mapped[str] = mapped_column(String(40), server_default="standard")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (Index("uq_companies_name_lower", func.lower(name), unique=True),)
    __mapper_args__ = {"version_id_col": version}


class Customer(Timestamped, Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    tier: Mapped[str] = mapped_column(String(40), server_default="standard")
    segment: Mapped[str | None] = mapped_column(String(80))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(80)), server_default="{}")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        Index("ix_customers_company_id", "company_id"),
        Index(
            "ix_customers_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )
    __mapper_args__ = {"version_id_col": version}


class CustomerIdentity(Base):
    """An e-mail address, phone number or external id; each belongs to one customer."""

    __tablename__ = "customer_identities"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (
        Index("uq_customer_identities_kind_value", "kind", "value", unique=True),
        # a customer's identities of one kind, oldest first (the address for mail)
        Index("ix_customer_identities_customer_kind", "customer_id", "kind", "id"),
        Index(
            "ix_customer_identities_value_trgm",
            "value",
            postgresql_using="gin",
            postgresql_ops={"value": "gin_trgm_ops"},
        ),
        CheckConstraint("kind IN ('email', 'phone', 'external')", name="kind"),
    )
