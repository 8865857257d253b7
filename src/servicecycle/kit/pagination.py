"""Opaque cursors for keyset pagination: stable under inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from servicecycle.kit.errors import ValidationFailed

T = TypeVar("T")


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """Parse a cursor made by :func:`encode_cursor`; a damaged one is a 422 on ``cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "Invalid cursor", fields={"cursor": "not a cursor from this API"}
        ) from exc
    if not isinstance(values, list):
        raise ValidationFailed("Invalid cursor", fields={"cursor": "not a cursor from this API"})
    return values


def decode_id_cursor(cursor: str) -> int:
    """The id in a cursor made by ``encode_cursor([id])``; a damaged one is a 422 on ``cursor``."""
    values = decode_cursor(cursor)
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool):
        raise ValidationFailed("Invalid cursor", fields={"cursor": "not a cursor from this API"})
    return values[0]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
