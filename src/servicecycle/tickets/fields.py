"""Validation of custom field values against their definitions. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from servicecycle.kit.errors import ValidationFailed

KEY = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
MAX_TEXT = 2000


@dataclass(frozen=True)
class FieldSpec:
    key: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = False
    active: bool = True


def check_definition(*, key: str, kind: str, options: list[str]) -> None:
    if not KEY.match(key):
        raise ValidationFailed("Invalid key", fields={"key": "lower case letters, digits, _"})
    if kind == "dropdown":
        if not options or len(set(options)) != len(options) or any(not o.strip() for o in options):
            raise ValidationFailed(
                "A dropdown needs distinct options", fields={"options": "distinct, not empty"}
            )
    elif options:
        raise ValidationFailed("Only dropdowns have options", fields={"options": "must be empty"})


def _one(spec: FieldSpec, value: Any) -> Any:
    path = f"custom.{spec.key}"
    if spec.kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValidationFailed(
                "Invalid value", fields={path: f"text up to {MAX_TEXT} characters"}
            )
        return value.strip()
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationFailed("Invalid value", fields={path: "a number"})
        return value
    if spec.kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError) as exc:
            raise ValidationFailed("Invalid value", fields={path: "a date, YYYY-MM-DD"}) from exc
    if spec.kind == "checkbox":
        if not isinstance(value, bool):
            raise ValidationFailed("Invalid value", fields={path: "true or false"})
        return value
    if value not in spec.options:
        raise ValidationFailed("Invalid value", fields={path: f"one of {', '.join(spec.options)}"})
    return value


def clean_values(
    specs: dict[str, FieldSpec], values: dict[str, Any], *, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The merged custom values; unknown or inactive keys and wrong types are a 422 naming
    ``custom.<key>``. ``None`` or an empty string clears a value."""
    merged = dict(current or {})
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None or not spec.active:
            raise ValidationFailed(
                f"Unknown custom field {key!r}", fields={f"custom.{key}": "no such field"}
            )
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = _one(spec, value)
    return merged


def missing_required(specs: dict[str, FieldSpec], values: dict[str, Any]) -> list[str]:
    """Required fields without a value (checked when a ticket is solved)."""
    return [s.key for s in specs.values() if s.active and s.required and s.key not in values]
