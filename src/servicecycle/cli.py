"""The ``servicecycle`` command."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from servicecycle.config import Settings, get_settings

app = typer.Typer(
    help="Servicecycle: the whole cycle of customer service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database: migrations, backup and restore.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(jobs_app, name="jobs")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=1)


@contextmanager
def _database(
    settings: Settings, *, exclusive: bool = False, migrate: bool = False, require_head: bool = True
) -> Iterator[str]:
    """The database URL, with every start-up failure turned into one clear line."""
    _setup_logging(settings)
    from servicecycle.db.connect import DatabaseUnreachable, database
    from servicecycle.db.embedded import EmbeddedDatabaseError
    from servicecycle.db.migrate import (
        SchemaTooNew,
        check_not_newer,
        current_revision,
        head_revision,
    )
    from servicecycle.db.migrate import upgrade as run_upgrade

    try:
        with database(settings, exclusive=exclusive) as url:
            check_not_newer(url)
            if migrate:
                run_upgrade(url)
            elif require_head and current_revision(url) != head_revision():
                raise fail("The database schema is not up to date: run `servicecycle db upgrade`.")
            yield url
    except (DatabaseUnreachable, EmbeddedDatabaseError, SchemaTooNew) as exc:
        raise fail(str(exc)) from None


def _setup_logging(settings: Settings) -> None:
    from servicecycle.web.observability import configure_logging

    configure_logging(json=settings.log_format == "json", level=settings.log_level)


# -- serve, worker, demo ------------------------------------------------------------------


def _serve(
    settings: Settings,
    url: str,
    *,
    host: str,
    port: int,
    worker: bool,
    mail_listener: bool = False,
    workers: int = 1,
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from servicecycle.app import SERVE_JOBS_ENV, SERVE_URL_ENV, create_app
    from servicecycle.channels.email.listener import ListenerThread
    from servicecycle.channels.email.watch import watcher_thread

    if workers > 1:
        # each process builds its own app (engine, pool, job worker) from the environment
        os.environ[SERVE_URL_ENV] = url
        os.environ[SERVE_JOBS_ENV] = "1" if worker else "0"
        application: Any = "servicecycle.app:from_environment"
    else:
        application = create_app(settings, url, run_worker=worker)
    config = uvicorn.Config(
        application,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    # the SMTP listener gets a thread and event loop of its own, beside uvicorn's
    listener = (
        ListenerThread(lambda stop, ready: _take_mail(settings, url, stop, ready=ready))
        if mail_listener
        else None
    )
    if listener is not None:
        listener.start()
        if listener.error is not None:
            raise fail(f"The mail listener could not start: {listener.error}")
    # IMAP IDLE beside the job worker: once per serve, however many server processes
    watcher = watcher_thread(settings, url) if worker and settings.imap_idle else None
    if watcher is not None:
        watcher.start()
    # uvicorn re-raises Ctrl-C / SIGTERM after its graceful shutdown; the caller's cleanup
    # (the embedded server) follows
    try:
        with contextlib.suppress(KeyboardInterrupt, Terminated):
            if workers > 1:
                # uvicorn's supervisor starts the processes and stops them on Ctrl-C / SIGTERM
                sock = config.bind_socket()
                Multiprocess(config, sockets=[sock]).run()
            else:
                uvicorn.Server(config).run()
    finally:
        if watcher is not None:
            watcher.stop()
        if listener is not None:
            listener.stop()
    err.print("Servicecycle stopped.")


async def _take_mail(
    settings: Settings,
    url: str,
    stop: asyncio.Event,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the SMTP listener until ``stop`` is set, then finish the mails being stored."""
    from servicecycle.channels.email.listener import listening, tls_of
    from servicecycle.db.engine import make_engine, make_sessionmaker
    from servicecycle.tickets.storage import storage_for

    tls = tls_of(settings)  # a bad certificate stops the start, naming the setting
    engine = make_engine(url, pool_size=4)
    try:
        async with listening(
            make_sessionmaker(engine),
            host=host or settings.smtp_listen_host,
            port=port if port is not None else settings.smtp_listen_port,
            storage=storage_for(settings.attachment_storage, settings.data_dir),
            max_file_bytes=settings.max_attachment_bytes,
            allowed=settings.listen_domains,
            hostname=settings.mail_from.partition("@")[2] or "servicecycle",
            tls=tls,
            require_tls=settings.smtp_listen_require_tls,
        ) as running:
            starttls = "off" if tls is None else "offered"
            if tls is not None and settings.smtp_listen_require_tls:
                starttls = "required"
            err.print(
                f"Taking mail by SMTP on {running.host}:{running.port} "
                f"(for {', '.join(settings.listen_domains) or 'any recipient'}; "
                f"STARTTLS {starttls})."
            )
            if ready is not None:
                ready()
            await stop.wait()
    finally:
        await engine.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Run no job worker in this process")
    ] = False,
    mail_listener: Annotated[
        bool,
        typer.Option(
            "--mail-listener", help="Also take mail by SMTP (smtp_listen_host:smtp_listen_port)"
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Server processes (one per CPU core uses them all); default 1"
        ),
    ] = 1,
) -> None:
    """Serve the web UI and API (migrating the embedded database first)."""
    settings = get_settings()
    with _database(settings, exclusive=True, migrate=settings.embedded) as url:
        _serve(
            settings,
            url,
            host=host or settings.host,
            port=port or settings.port,
            worker=not no_worker,
            mail_listener=mail_listener,
            workers=workers,
        )


@app.command("mail-listener")
def mail_listener(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Take mail for the desk by SMTP (point an MX record or a forwarding rule at it)."""
    settings = get_settings()

    async def main(url: str) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await _take_mail(settings, url, stop, host=host, port=port)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    with _database(settings) as url:
        try:
            asyncio.run(main(url))
        except (OSError, ValueError) as exc:  # the port is taken, or a bad certificate
            raise fail(f"Cannot listen for mail: {exc}") from None
        finally:
            # asyncio reset SIGTERM to its default; keep it an exception until the
            # embedded server is stopped
            signal.signal(signal.SIGTERM, _raise_terminated)
    err.print("Mail listener stopped.")


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
) -> None:
    """Run a job worker (run as many as you need, on any machine), and the IMAP IDLE
    watcher beside it (they share the mailboxes between them)."""
    from servicecycle.channels.email.watch import watch_mailboxes
    from servicecycle.db.engine import make_engine, make_sessionmaker
    from servicecycle.jobs.queue import bind_sessions, make_job_app

    settings = get_settings()

    async def main(url: str) -> None:
        engine = make_engine(url, pool_size=2)
        bind_sessions(make_sessionmaker(engine))
        job_app = make_job_app(url)
        # signals are ours, not procrastinate's: they must stop the IDLE watcher too
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        working: asyncio.Task[None] | None = None

        def on_signal() -> None:  # the first stops gently; a second aborts running jobs
            if stop.is_set() and working is not None:
                working.cancel()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        watching = (
            asyncio.create_task(watch_mailboxes(settings, url, stop))
            if settings.imap_idle
            else None
        )
        try:
            async with job_app.open_async():
                working = asyncio.create_task(
                    job_app.run_worker_async(
                        concurrency=concurrency or settings.worker_concurrency,
                        install_signal_handlers=False,
                    )
                )
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not working.done():
                    working.cancel()  # procrastinate finishes the jobs it is running
                with contextlib.suppress(asyncio.CancelledError):
                    await working
        finally:
            stop.set()
            if watching is not None:
                await watching
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await engine.dispose()

    with _database(settings) as url:
        try:
            asyncio.run(main(url))
        finally:  # asyncio reset SIGTERM: an exception again until the embedded server stops
            signal.signal(signal.SIGTERM, _raise_terminated)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server after loading")
    ] = True,
    tickets: Annotated[
        int | None,
        typer.Option(
            min=10,
            max=200_000,
            help=(
                "Load about this many tickets over the six months instead of the shop's own"
                " volume (about 20,000, which loads in about two minutes on two cores)"
            ),
        ),
    ] = None,
) -> None:
    """Load the demo business (six months of a simulated shop, the first time) and serve it."""
    from servicecycle.demo import DEMO_LOGINS, load

    settings = get_settings()
    with _database(settings, exclusive=serve_after, migrate=True) as url:
        with _progress() as report:
            created = asyncio.run(load(url, progress=report, tickets=tickets))
        out.print(f"[green]Demo data ready[/] ({created:,} new records).")
        table = Table(title="Sign in with", show_lines=False)
        for column in ("role", "e-mail", "password"):
            table.add_column(column)
        for role, email, password in DEMO_LOGINS:
            table.add_row(role, email, password)
        out.print(table)
        if serve_after:
            h, p = host or settings.host, port or settings.port
            out.print(f"Open [bold]http://{h}:{p}[/] in your browser. Ctrl-C stops the server.")
            _serve(settings, url, host=h, port=p, worker=True)


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar per phase; the callback takes (phase, done, total)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:

        def report(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = progress.add_task(phase, total=total)
            progress.update(bars[phase], completed=done, total=total)

        yield report


@app.command()
def simulate(
    scenario: Annotated[
        Path, typer.Argument(help="A scenario file (TOML), see docs/simulation.md")
    ],
    seed: Annotated[int, typer.Option(help="The same seed gives the same data")] = 1,
    answers: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the planted truths (default: SCENARIO-seedN.answers.json)"
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Last day of the run, YYYY-MM-DD (default: the scenario's, else today)"),
    ] = None,
    append: Annotated[
        bool,
        typer.Option("--append", help="Run into a database that already has tickets"),
    ] = False,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="SERVICECYCLE_NEW_PASSWORD",
            help="Password of the agents made (default: none, they cannot sign in)",
        ),
    ] = None,
) -> None:
    """Run a simulated business into the database (migrating it first), and write its answers."""
    import datetime as dt

    from servicecycle.simulation.generate import generate
    from servicecycle.simulation.scenario import ScenarioError, load_scenario

    try:
        model = load_scenario(scenario)
    except ScenarioError as exc:
        err.print(f"[bold red]error:[/] {scenario} is not a usable scenario:", highlight=False)
        for line in exc.lines:
            err.print(f"  {line}", highlight=False, markup=False)
        raise typer.Exit(code=1) from None
    try:
        last = dt.date.fromisoformat(end) if end else None
    except ValueError:
        raise fail(f"--end: {end!r} is not a date (YYYY-MM-DD)") from None
    target = answers or Path(f"{scenario.stem}-seed{seed}.answers.json")
    settings = get_settings()
    with _database(settings, exclusive=True, migrate=True) as url:
        if not append and asyncio.run(_has_tickets(url)):
            raise fail(
                "The database already has tickets: pass --append to add a simulated business "
                "to them, or point SERVICECYCLE_DATA_DIR / DATABASE_URL at an empty one."
            )
        with err.status("Simulating the business..."):
            plan = generate(model, seed=seed, end=last)
        out.print(
            f"{plan.name}: {len(plan.tickets):,} tickets from {plan.start:%Y-%m-%d} "
            f"to {plan.end:%Y-%m-%d}, replayed through the services."
        )
        from servicecycle.simulation.driver import Refused

        try:
            with _progress() as report:
                summary = asyncio.run(_replay(url, plan, password, report))
        except Refused as exc:  # the days before it stay committed
            raise fail(f"The desk refused a step of the plan: {exc}") from None
    target.write_text(json.dumps(plan.answers.to_json(), indent=2) + "\n", encoding="utf-8")
    out.print(
        f"[green]Done[/] in {summary.seconds:,.0f} s: {summary.tickets:,} tickets, "
        f"{summary.messages:,} messages, {summary.survey_answers:,} survey answers, "
        f"{summary.mails_sent:,} historic mails settled. Answers: {target}"
    )


async def _has_tickets(url: str) -> bool:
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
    from servicecycle.simulation.driver import has_tickets

    engine = make_engine(url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            return await has_tickets(session)
    finally:
        await engine.dispose()


async def _replay(
    url: str, plan: Any, password: str | None, report: Callable[[str, int, int], None]
) -> Any:
    from servicecycle.simulation.driver import replay

    return await replay(
        url, plan, password=password, progress=lambda done, total: report("Replaying", done, total)
    )


# -- db -------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration this version has."""
    settings = get_settings()
    with _database(settings, migrate=True):
        out.print("[green]The database schema is up to date.[/]")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and this version's newest."""
    from servicecycle.db.migrate import current_revision, head_revision

    settings = get_settings()
    with _database(settings, require_head=False) as url:
        current, head = current_revision(url), head_revision()
        state = "up to date" if current == head else "needs `servicecycle db upgrade`"
        out.print(f"database: {current or 'empty'}   code: {head}   ({state})")


@db_app.command("backup")
def db_backup(file: Annotated[Path, typer.Argument(help="Where to write the backup")]) -> None:
    """Write a full backup (pg_dump custom format) to FILE."""
    from servicecycle.db.backup import BackupError, backup

    settings = get_settings()
    target = file.resolve()
    with _database(settings, require_head=False) as url:
        try:
            size = backup(url, target)
        except BackupError as exc:
            raise fail(str(exc)) from None
    out.print(f"[green]Backup written[/] to {target} ({size:,} bytes).")


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `servicecycle db backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Restore even while servers or workers are connected")
    ] = False,
) -> None:
    """Replace the database's contents with a backup, in one transaction."""
    from servicecycle.db.backup import BackupError, check_archive, other_connections, restore

    settings = get_settings()
    try:
        check_archive(file)
    except BackupError as exc:
        raise fail(str(exc)) from None
    if not yes and not typer.confirm("This replaces everything in the database. Continue?"):
        raise typer.Exit(code=1)
    with _database(settings, require_head=False) as url:
        busy = other_connections(url)
        if busy and not force:
            raise fail(
                f"{busy} other Servicecycle connection(s) use this database (a server or "
                "worker is running). Stop them first, or pass --force."
            )
        try:
            restore(url, file)
        except BackupError as exc:
            raise fail(str(exc)) from None
    out.print(f"[green]Restored[/] from {file}.")


# -- users ----------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Sign-in e-mail address")],
    name: Annotated[str, typer.Option(help="Full name")],
    role: Annotated[str, typer.Option(help="admin, agent or analyst")] = "agent",
    password: Annotated[
        str | None,
        typer.Option(
            envvar="SERVICECYCLE_NEW_PASSWORD",
            help="Password (asked for when not given; or set SERVICECYCLE_NEW_PASSWORD)",
        ),
    ] = None,
) -> None:
    """Create a user who can sign in."""
    from servicecycle.auth import service
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
    from servicecycle.events.service import Actor
    from servicecycle.kit.errors import ServiceError

    settings = get_settings()
    if password is None:
        if not sys.stdin.isatty():
            raise fail("No password: pass --password or set SERVICECYCLE_NEW_PASSWORD.")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise fail("The passwords differ.")

    async def main(url: str) -> int:
        engine = make_engine(url, pool_size=1)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                user = await service.create_user(
                    session,
                    email=email,
                    name=name,
                    role=role,
                    password=password,
                    actor=Actor.system("cli"),
                )
                return user.id
        finally:
            await engine.dispose()

    with _database(settings) as url:
        try:
            user_id = asyncio.run(main(url))
        except ServiceError as exc:
            detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
            raise fail(f"{exc.message}{f' ({detail})' if detail else ''}") from None
    out.print(f"[green]Created[/] {role} {email} (id {user_id}).")


# -- jobs -----------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only jobs that failed for good")
    ] = False,
    status: Annotated[
        str | None, typer.Option(help="todo, doing, succeeded, failed, cancelled, aborted")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List background jobs, newest first."""
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
    from servicecycle.jobs.service import list_jobs

    settings = get_settings()
    wanted = "failed" if failed else status

    async def main(url: str) -> list[dict[str, Any]]:
        engine = make_engine(url, pool_size=1)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                return await list_jobs(session, status=wanted, limit=limit)
        finally:
            await engine.dispose()

    with _database(settings) as url:
        rows = asyncio.run(main(url))
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        out.print(f"No {wanted + ' ' if wanted else ''}jobs.")
        return
    table = Table()
    for column in ("id", "task", "queue", "status", "attempts", "last event", "args"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["task_name"],
            row["queue_name"],
            row["status"],
            str(row["attempts"]),
            row["last_event_at"].strftime("%Y-%m-%d %H:%M:%S") if row["last_event_at"] else "",
            json.dumps(row["args"])[:60],
        )
    out.print(table)


# -- config ---------------------------------------------------------------------------------


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Print the effective settings (secrets masked)."""
    shown = get_settings().masked()
    if as_json:
        out.print_json(json.dumps(shown, default=str))
        return
    table = Table(show_header=True)
    table.add_column("setting")
    table.add_column("value")
    for key, value in shown.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)


class Terminated(Exception):
    """SIGTERM, as an exception, so every ``with`` block (the embedded server) unwinds."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    # The default SIGTERM action kills the process on the spot, leaving the embedded
    # PostgreSQL running; as an exception it stops it like Ctrl-C does. uvicorn keeps
    # this handler and calls it again after its own graceful shutdown.
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app()
    except Terminated:
        sys.exit(0)
