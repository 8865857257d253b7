"""What one running app holds: settings, database, job queue, templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from servicecycle.config import Settings

if TYPE_CHECKING:
    import procrastinate


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    jobs: procrastinate.App
    run_worker: bool
