"""Pages of follow-ups: the due queue of the workspace."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
