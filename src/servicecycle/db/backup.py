"""Backups with the bundled PostgreSQL client tools (pg_dump, pg_restore, psql)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import psycopg

from servicecycle.db.embedded import bin_dir
from servicecycle.db.engine import libpq_url

# Settings newer pg_dump releases write that older servers do not know (the bundled tools
# are PostgreSQL 18; a server may be older). Each resets a default, so dropping it is safe.
_NEWER_SETTINGS = (b"SET transaction_timeout",)


class BackupError(RuntimeError):
    """A backup or restore did not happen; the message says why. Nothing was changed."""


def _tool(name: str) -> str:
    return str(bin_dir() / name)


def backup(url: str, target: Path) -> int:
    """Write a custom-format dump to ``target`` (whole or not at all); returns its size."""
    if not target.parent.is_dir():
        raise BackupError(f"No such folder: {target.parent}")
    partial = target.with_name(target.name + ".partial")
    result = subprocess.run(
        [
            _tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            f"--file={partial}",
            f"--dbname={libpq_url(url)}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    partial.replace(target)
    return target.stat().st_size


def check_archive(file: Path) -> None:
    """Refuse anything that is not a pg_dump archive, before touching the database."""
    if not file.is_file():
        raise BackupError(f"No such backup file: {file}")
    listing = subprocess.run(
        [_tool("pg_restore"), "--list", str(file)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        reason = listing.stderr.strip().splitlines()[0] if listing.stderr.strip() else ""
        raise BackupError(f"{file} is not a backup made by `servicecycle db backup`: {reason}")


def other_connections(url: str) -> int:
    """How many other Servicecycle processes (servers, workers) are connected."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND application_name LIKE 'servicecycle%'"
        ).fetchone()
    return int(row[0]) if row else 0


def restore(url: str, file: Path) -> None:
    """Replace the database's contents with ``file`` in one transaction.

    pg_restore turns the archive into SQL, which psql applies with --single-transaction
    and ON_ERROR_STOP: an error anywhere rolls everything back.
    """
    check_archive(file)
    with tempfile.TemporaryFile() as dump_errors, tempfile.TemporaryFile() as apply_errors:
        producer = subprocess.Popen(
            [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--file=-", str(file)],
            stdout=subprocess.PIPE,
            stderr=dump_errors,
        )
        consumer = subprocess.Popen(
            [
                _tool("psql"),
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={libpq_url(url)}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=apply_errors,
        )
        assert producer.stdout is not None and consumer.stdin is not None
        try:
            for line in producer.stdout:
                if not line.startswith(_NEWER_SETTINGS):
                    consumer.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped on an error; its message is read below
        finally:
            producer.stdout.close()
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()
        produced, applied = producer.wait(), consumer.wait()
        if produced != 0 or applied != 0:
            dump_errors.seek(0)
            apply_errors.seek(0)
            detail = (apply_errors.read() or dump_errors.read()).decode(errors="replace").strip()
            raise BackupError(f"Restore failed and nothing was changed: {detail}")
