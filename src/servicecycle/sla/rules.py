"""Which policy a ticket gets, and clock arithmetic. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from servicecycle.kit.errors import ValidationFailed

CONDITION_KEYS = {"priority": str, "channel": str, "tier": str, "team_id": int, "tags": str}
STATUS_PAUSABLE = ("new", "open", "pending", "on-hold")


@dataclass(frozen=True)
class TicketFacts:
    """What policy conditions look at."""

    priority: str
    channel: str
    tier: str
    team_id: int | None
    tags: tuple[str, ...]


def check_conditions(conditions: dict[str, Any]) -> dict[str, list[Any]]:
    """Each condition is a list of accepted values (any of them matches; tags: any tag)."""
    clean: dict[str, list[Any]] = {}
    for key, values in conditions.items():
        kind = CONDITION_KEYS.get(key)
        if kind is None:
            raise ValidationFailed(
                "Unknown condition",
                fields={f"conditions.{key}": f"one of {', '.join(CONDITION_KEYS)}"},
            )
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, kind) for v in values)
        ):
            raise ValidationFailed(
                "Invalid condition",
                fields={f"conditions.{key}": f"a non-empty list of {kind.__name__}"},
            )
        clean[key] = values
    return clean


def matches(conditions: dict[str, list[Any]], facts: TicketFacts) -> bool:
    for key, values in conditions.items():
        if key == "tags":
            if not set(values) & set(facts.tags):
                return False
        elif getattr(facts, key) not in values:
            return False
    return True


def check_targets(targets: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{"first_reply": {"minutes": 240, "business": true}, ...}``; at least one target."""
    clean: dict[str, dict[str, Any]] = {}
    for metric, target in targets.items():
        path = f"targets.{metric}"
        if metric not in metrics:
            raise ValidationFailed("Unknown target", fields={path: f"one of {', '.join(metrics)}"})
        if not isinstance(target, dict) or set(target) - {"minutes", "business"}:
            raise ValidationFailed(
                "Invalid target", fields={path: '{"minutes": int, "business": bool}'}
            )
        minutes = target.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 525_600:
            raise ValidationFailed("Invalid target", fields={f"{path}.minutes": "1 to 525600"})
        business = target.get("business", True)
        if not isinstance(business, bool):
            raise ValidationFailed("Invalid target", fields={f"{path}.business": "true or false"})
        clean[metric] = {"minutes": minutes, "business": business}
    if not clean:
        raise ValidationFailed("A policy needs a target", fields={"targets": "at least one"})
    return clean


Adder = Callable[[datetime, float], datetime]
Measurer = Callable[[datetime, datetime], float]


def calendar_adder(start: datetime, minutes: float) -> datetime:
    return start + timedelta(minutes=minutes)


def calendar_measurer(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60


@dataclass(frozen=True)
class Due:
    due_at: datetime
    warn_at: datetime


def due_from(now: datetime, *, target: float, used: float, warn: float, add: Adder) -> Due:
    """When a clock running from ``now`` with ``used`` minutes spent falls due, and when to warn
    (``warn`` working minutes before, or now if that has passed)."""
    remaining = max(target - used, 0.0)
    due_at = add(now, remaining)
    warn_at = add(now, max(remaining - warn, 0.0)) if remaining > 0 else due_at
    return Due(due_at=due_at, warn_at=warn_at)
