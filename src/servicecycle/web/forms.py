"""Small readers for HTML form posts, shared by every domain's pages."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData

from servicecycle.kit.errors import ServiceError


def form_text(form: FormData, name: str, *, strip: bool = True) -> str:
    """The field's text ("" when absent or a file), stripped unless ``strip`` is false."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip() if strip else value


def form_version(typed: str) -> int:
    """The version a form was rendered with; -1 (never current) when it is not a number."""
    return int(typed) if typed.isdigit() else -1


def problem(exc: ServiceError) -> dict[str, Any]:
    """What a template needs to show a refusal: the message and the per-field reasons."""
    return {"error": exc.message, "fields": dict(exc.fields)}
