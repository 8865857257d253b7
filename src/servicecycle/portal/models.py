"""Tables of the portal domain: customers' passwords and sessions, used links, throttling."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base
from servicecycle.kit import clock


class PortalAccount(Base):
    """A customer's portal password (optional: magic links work without one)."""

    __tablename__ = "portal_accounts"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    password_hash: Mapped[str | None] = mapped_column(Text)
    password_set_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())


class PortalSession(Base):
    """A signed-in customer: a browser (cookie ``sc_portal``) or an API client (bearer
    ``scp_...``). Only the token's SHA-256 is stored."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), server_default="web")  # web | api
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    expires_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_portal_sessions_customer_id", "customer_id"),
        Index("ix_portal_sessions_expires_at", "expires_at"),
    )


class UsedLink(Base):
    """A magic link that was used: a second use of the same link id is refused."""

    __tablename__ = "portal_used_links"

    link_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
    expires_at: Mapped[datetime]  # after this the link is refused anyway; the row can go


class ThrottleHit(Base):
    """One counted request (a link asked for, a form sent, a wrong password) for rate limits,
    by bucket and key (an e-mail address or an IP address)."""

    __tablename__ = "portal_throttle_hits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())

    __table_args__ = (Index("ix_portal_throttle_hits_bucket_key_at", "bucket", "key", "at"),)


class SharedCompany(Base):
    """A company whose people see each other's requests in the portal."""

    __tablename__ = "portal_shared_companies"

    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())


class PortalUpload(Base):
    """A file a customer uploaded through the API, until a request or reply of theirs claims
    it (only its uploader may; unclaimed uploads go with the nightly upload clean-up)."""

    __tablename__ = "portal_uploads"

    attachment_id: Mapped[int] = mapped_column(
        ForeignKey("attachments.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now, server_default=func.now())
