"""REST and WebSocket routes of live chat."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["chat"])
