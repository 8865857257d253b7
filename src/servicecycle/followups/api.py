"""REST routes of follow-ups."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["follow-ups"])
