"""Profile fragments for the customer page and the ticket side panel."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
