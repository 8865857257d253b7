"""REST routes of customer profiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from servicecycle.auth.deps import ApiUser, Db
from servicecycle.profiles import service
from servicecycle.profiles.schemas import EXAMPLE, ProfileRead

router = APIRouter(prefix="/api/v1", tags=["customers"])


@router.get(
    "/customers/{customer_id}/profile",
    response_model=ProfileRead,
    summary="A customer's profile: health score, segment and history",
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        404: {"description": "No such customer"},
    },
)
async def customer_profile(customer_id: int, principal: ApiUser, db: Db) -> Any:
    """The health score (0-100) with its parts (feedback 40, open tickets 20, reopens 20,
    waiting 20), the loyalty segment (promoter, passive, detractor, at_risk, unknown) and
    the lifetime history. Computed on read; see docs/profiles.md for the rules."""
    return ProfileRead.of(await service.profile(db, customer_id))
