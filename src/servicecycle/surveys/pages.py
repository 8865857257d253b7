"""Pages of surveys: the customer's answer pages and the admin's survey settings."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
