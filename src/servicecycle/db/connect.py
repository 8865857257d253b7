"""Reach the configured database: the external one, or the embedded server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from servicecycle.config import Settings, mask_url
from servicecycle.db.embedded import embedded_database
from servicecycle.db.engine import libpq_url


class DatabaseUnreachable(RuntimeError):
    """The external database did not answer; the message names it (password hidden)."""


def check_reachable(url: str) -> None:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnreachable(
            f"Cannot reach the database at {mask_url(url)}: {reason}"
        ) from exc


@contextlib.contextmanager
def database(settings: Settings, *, exclusive: bool = False) -> Iterator[str]:
    """Yield a usable database URL for the duration of the block."""
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        check_reachable(url)
        yield url
        return
    with embedded_database(settings.data_dir, exclusive=exclusive) as url:
        yield url
