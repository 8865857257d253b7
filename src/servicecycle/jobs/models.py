"""Liveness of the periodic work, one row per beat name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from servicecycle.db.base import Base


class Heartbeat(Base):
    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    beat_at: Mapped[datetime]
    worker: Mapped[str] = mapped_column(String(200))
