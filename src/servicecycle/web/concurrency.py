"""Optimistic concurrency over HTTP: ETag out, If-Match (or a body ``version``) in."""

from __future__ import annotations

from servicecycle.kit.errors import PreconditionRequired, ValidationFailed


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(if_match: str | None, body_version: int | None) -> int:
    """The version the client last saw, from ``If-Match`` or the body; one is required."""
    if if_match is not None:
        value = if_match.strip().removeprefix("W/").strip('"')
        if not value.isdigit():
            raise ValidationFailed("Invalid If-Match", fields={"If-Match": 'expected "<version>"'})
        return int(value)
    if body_version is None:
        raise PreconditionRequired(
            "Send the version you are updating (If-Match header or `version` field)",
            fields={"version": "required"},
        )
    return body_version
