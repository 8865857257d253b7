"""The ``servicecycle`` command as a user runs it, against a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from servicecycle.db.engine import libpq_url


def run(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("SERVICECYCLE_", "DATABASE_URL"))
    }
    environment.update(env or {})
    environment.setdefault("COLUMNS", "200")
    return subprocess.run(
        [sys.executable, "-m", "servicecycle", *args],
        capture_output=True,
        text=True,
        env=environment,
        input=input,
        timeout=timeout,
        check=False,
    )


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for name in ("serve", "worker", "demo", "db", "user", "jobs", "config"):
        assert f" {name} " in result.stdout


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    result = run(
        "config",
        "show",
        "--json",
        env={
            "DATABASE_URL": "postgresql://app:hunter2secret@db.example:5432/sc",
            "SERVICECYCLE_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert "hunter2secret" not in result.stdout
    assert shown["database_url"] == "postgresql://app:***@db.example:5432/sc"
    assert shown["embedded"] is False


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    result = run(
        "serve", env={"DATABASE_URL": "postgresql://nobody:pw@127.0.0.1:1/none"}, timeout=30
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Cannot reach the database at postgresql://nobody:***@127.0.0.1:1/none" in result.stderr
    assert "pw@" not in result.stderr


def test_serve_refuses_a_database_migrated_by_a_newer_release(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'abc_newer'")
    result = run("serve", env={"DATABASE_URL": url}, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "abc_newer" in result.stderr and "newer release" in result.stderr


def test_user_create_then_the_user_can_sign_in(fresh_database: Callable[..., str]) -> None:
    url = fresh_database()
    env = {"DATABASE_URL": url, "SERVICECYCLE_NEW_PASSWORD": "a long enough password"}
    created = run(
        "user",
        "create",
        "--email",
        "boss@example.com",
        "--name",
        "The Boss",
        "--role",
        "admin",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert "Created admin boss@example.com" in created.stdout
    again = run("user", "create", "--email", "BOSS@example.com", "--name", "Twin", env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    weak = run(
        "user",
        "create",
        "--email",
        "w@example.com",
        "--name",
        "W",
        env={"DATABASE_URL": url, "SERVICECYCLE_NEW_PASSWORD": "short"},
    )
    assert weak.returncode == 1 and "password: at least 10 characters" in weak.stderr
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT email, role, password_hash LIKE '$argon2id$%' FROM users"
        ).fetchall()
        kinds = conn.execute("SELECT kind, actor_type, actor_id FROM events ORDER BY id").fetchall()
    assert rows == [("boss@example.com", "admin", True)]
    assert kinds == [("user.created", "system", "cli")]


def test_jobs_list_shows_failed_jobs(fresh_database: Callable[..., str]) -> None:
    url = fresh_database()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)"
            " VALUES ('default', 'mail.send', '{\"to\": 1}', 'failed', 6),"
            " ('default', 'system.heartbeat', '{}', 'succeeded', 1)"
        )
    result = run("jobs", "list", "--failed", "--json", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)
    assert [(j["task_name"], j["attempts"], j["status"]) for j in jobs] == [
        ("mail.send", 6, "failed")
    ]
    table = run("jobs", "list", "--failed", env={"DATABASE_URL": url})
    assert "mail.send" in table.stdout and "system.heartbeat" not in table.stdout


def test_backup_and_restore_round_trip(fresh_database: Callable[..., str], tmp_path: Path) -> None:
    url = fresh_database()
    env = {"DATABASE_URL": url, "SERVICECYCLE_NEW_PASSWORD": "a long enough password"}
    assert (
        run("user", "create", "--email", "keep@example.com", "--name", "Keep", env=env).returncode
        == 0
    )
    backup = tmp_path / "sc.dump"
    made = run("db", "backup", str(backup), env=env)
    assert made.returncode == 0, made.stderr
    assert backup.stat().st_size > 0 and not list(tmp_path.glob("*.partial"))
    assert (
        run("user", "create", "--email", "later@example.com", "--name", "Later", env=env).returncode
        == 0
    )
    restored = run("db", "restore", str(backup), "--yes", env=env)
    assert restored.returncode == 0, restored.stderr
    with psycopg.connect(libpq_url(url)) as conn:
        emails = [r[0] for r in conn.execute("SELECT email FROM users ORDER BY id")]
    assert emails == ["keep@example.com"]


def test_restore_refuses_a_file_that_is_not_a_backup(
    fresh_database: Callable[..., str], tmp_path: Path
) -> None:
    url = fresh_database()
    junk = tmp_path / "junk.dump"
    junk.write_text("this is not a backup")
    result = run("db", "restore", str(junk), "--yes", env={"DATABASE_URL": url})
    assert result.returncode == 1 and "is not a backup" in result.stderr


@pytest.mark.parametrize("target", ["/no/such/folder/x.dump"])
def test_backup_into_a_missing_folder_is_refused(
    fresh_database: Callable[..., str], target: str
) -> None:
    result = run("db", "backup", target, env={"DATABASE_URL": fresh_database()})
    assert result.returncode == 1 and "No such folder" in result.stderr


def test_restore_refuses_while_a_server_is_connected(
    fresh_database: Callable[..., str], tmp_path: Path
) -> None:
    url = fresh_database()
    backup = tmp_path / "sc.dump"
    assert run("db", "backup", str(backup), env={"DATABASE_URL": url}).returncode == 0
    with psycopg.connect(libpq_url(url), application_name="servicecycle"):
        refused = run("db", "restore", str(backup), "--yes", env={"DATABASE_URL": url})
        assert refused.returncode == 1 and "1 other Servicecycle connection" in refused.stderr
    assert run("db", "restore", str(backup), "--yes", env={"DATABASE_URL": url}).returncode == 0
