"""Mail in by SMTP: the desk as the last hop of a mail's journey.

An MX record or a forwarding rule hands mail to this listener. Mails are stored one
transaction at a time: a mail that arrives while another is being stored waits for it, and
all that waited then go into the next transaction together (``batch.receive_many``, up to
``BATCH``; a lone mail through :func:`intake.receive`). The server answers ``250`` only once
the mail's transaction is committed; any failure is a ``451`` so the sending server keeps the
mail and tries again later (a mail that fails in a batch is rolled back alone: the others
are stored and answered ``250``). Nothing is accepted that is not stored, and a mail sent
twice (after a lost ``250``) is stored once, by its Message-ID.

Mail larger than the intake limit is refused with ``552`` (announced in EHLO as ``SIZE``);
recipients outside ``smtp_listen_domains`` (when set) with ``550``.

With a certificate and key configured the listener offers ``STARTTLS`` (and, when told to,
refuses every mail command until the sender has used it: ``530``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.email import batch, intake
from servicecycle.config import Settings
from servicecycle.db.engine import unit_of_work
from servicecycle.tickets.storage import Storage

log = structlog.get_logger(__name__)
IDENT = "Servicecycle"
BATCH = 25  # mails stored in one transaction at most


def accepts(address: str, allowed: tuple[str, ...]) -> bool:
    """Whether mail for ``address`` belongs to the desk: any address when ``allowed`` is
    empty; otherwise its domain, or the address itself (a ``+tag`` aside), is listed."""
    if not allowed:
        return True
    local, _, domain = address.strip().lower().rpartition("@")
    if not local or not domain:
        return False
    plain = f"{local.split('+', 1)[0]}@{domain}"
    return domain in allowed or plain in allowed or address.lower() in allowed


class ListenerSetupError(ValueError):
    """The listener's TLS settings cannot be used; the message names the setting."""


def server_tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The TLS context for ``STARTTLS`` from a PEM certificate (chain) and its key, or None
    when neither is set. A missing half, an unreadable file or a key that does not match the
    certificate is refused with the setting's name."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ListenerSetupError(
            "Set both SERVICECYCLE_SMTP_LISTEN_TLS_CERT and SERVICECYCLE_SMTP_LISTEN_TLS_KEY "
            "(or neither)"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except FileNotFoundError as exc:
        raise ListenerSetupError(f"TLS certificate or key not found: {exc.filename}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise ListenerSetupError(
            f"SERVICECYCLE_SMTP_LISTEN_TLS_CERT / _KEY cannot be used ({cert}, {key}): {exc}"
        ) from exc
    return context


def _trace(envelope: Envelope, session: Session, hostname: str) -> bytes:
    """The headers a final delivery adds: the envelope sender (``Return-Path``, so a bounce's
    empty sender is seen), the recipient (``Delivered-To``, which may carry +t<ticket>), and
    a ``Received`` line for whoever reads the mail's path."""
    peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
    helo = (session.host_name or "unknown").replace("\r", "").replace("\n", "")[:200]
    lines = [f"Return-Path: <{envelope.mail_from or ''}>"]
    lines += [f"Delivered-To: {rcpt}" for rcpt in envelope.rcpt_tos[:1]]
    lines.append(
        f"Received: from {helo} ([{peer}])\r\n\tby {hostname} ({IDENT}) with "
        f"{'ESMTP' if session.extended_smtp else 'SMTP'}; {formatdate(localtime=False)}"
    )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


class DeskHandler:
    """aiosmtpd handler: checks recipients, stores each mail, answers after the commit."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        storage: Storage,
        max_file_bytes: int,
        allowed: tuple[str, ...] = (),
        hostname: str = "servicecycle",
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.max_file_bytes = max_file_bytes
        self.allowed = allowed
        self.hostname = hostname
        self.busy = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._waiting: list[tuple[bytes, asyncio.Future[intake.Outcome]]] = []
        self._storer: asyncio.Task[None] | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not accepts(address, self.allowed):
            log.info("mail.listener.recipient_refused", recipient=address)
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
        trace = _trace(envelope, session, self.hostname)
        if len(trace) + len(raw) <= intake.MAX_MAIL_BYTES:  # a mail at the very limit goes bare
            raw = trace + raw
        self.busy += 1
        self.idle.clear()
        try:
            outcome = await self._store(raw)
            if outcome.outcome == batch.FAILED:
                raise RuntimeError(outcome.reason)
        except Exception:  # the mail is not stored: the sender must keep it and try again
            log.exception("mail.listener.store_failed", size=len(raw), sender=envelope.mail_from)
            return "451 4.3.0 The mail could not be stored just now; please try again later"
        finally:
            self.busy -= 1
            if not self.busy:
                self.idle.set()
        log.info(
            "mail.listener.received",
            outcome=outcome.outcome,
            ticket_id=outcome.ticket_id,
            size=len(raw),
        )
        where = f" #{outcome.ticket_id}" if outcome.ticket_id else ""
        return f"250 2.0.0 OK: {outcome.outcome}{where}"

    @property
    def waiting(self) -> int:
        """Mails received and waiting for the transaction in progress to end."""
        return len(self._waiting)

    async def _store(self, raw: bytes) -> intake.Outcome:
        """The mail's outcome once its transaction is committed (with those that waited
        beside it); raises if that transaction failed."""
        stored: asyncio.Future[intake.Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, stored))
        if self._storer is None or self._storer.done():
            self._storer = asyncio.create_task(self._store_waiting())
        return await stored

    async def _store_waiting(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            try:
                async with unit_of_work(self.sessions) as db:
                    if len(taken) == 1:
                        outcomes = [
                            await intake.receive(
                                db,
                                taken[0][0],
                                storage=self.storage,
                                max_file_bytes=self.max_file_bytes,
                            )
                        ]
                    else:
                        outcomes = await batch.receive_many(
                            db,
                            [raw for raw, _ in taken],
                            storage=self.storage,
                            max_file_bytes=self.max_file_bytes,
                        )
            except Exception as exc:  # nothing of this transaction is kept
                for _, stored in taken:
                    if not stored.done():
                        stored.set_exception(exc)
                continue
            except BaseException:  # cancelled (the loop is ending): none of them is stored
                for _, stored in taken:
                    if not stored.done():
                        stored.cancel()
                raise
            for (_, stored), outcome in zip(taken, outcomes, strict=True):
                if not stored.done():  # its sender may have gone meanwhile
                    stored.set_result(outcome)


@dataclass
class Listener:
    """A running listener: its address, and the handler (for how busy it is)."""

    host: str
    port: int
    handler: DeskHandler
    server: asyncio.Server


@contextlib.asynccontextmanager
async def listening(
    sessions: async_sessionmaker[AsyncSession],
    *,
    host: str,
    port: int,
    storage: Storage,
    max_file_bytes: int,
    allowed: tuple[str, ...] = (),
    hostname: str = "servicecycle",
    max_bytes: int = intake.MAX_MAIL_BYTES,
    drain_seconds: float = 30.0,
    tls: ssl.SSLContext | None = None,
    require_tls: bool = False,
) -> AsyncIterator[Listener]:
    """Listen on ``host:port`` in the running event loop for the block's duration, offering
    ``STARTTLS`` with ``tls`` (required first with ``require_tls``). On exit,
    no new connection is taken, mails being stored are finished (up to ``drain_seconds``),
    and open connections are closed (their senders retry what was not acknowledged)."""
    # aiosmtpd logs every command (with addresses) at INFO: ours say what matters
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = DeskHandler(
        sessions,
        storage=storage,
        max_file_bytes=max_file_bytes,
        allowed=allowed,
        hostname=hostname,
    )
    protocols: list[SMTP] = []

    def factory() -> SMTP:
        protocol = SMTP(
            handler,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident=IDENT,
            tls_context=tls,
            require_starttls=require_tls and tls is not None,
        )
        protocols[:] = [p for p in protocols if p.transport and not p.transport.is_closing()]
        protocols.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, host=host, port=port)
    bound = server.sockets[0].getsockname()
    log.info(
        "mail.listener.started",
        host=bound[0],
        port=bound[1],
        accepts=allowed or "any",
        starttls="required" if tls and require_tls else "offered" if tls else "no",
    )
    try:
        yield Listener(host=bound[0], port=int(bound[1]), handler=handler, server=server)
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handler.idle.wait(), drain_seconds)
        for protocol in protocols:
            if protocol.transport is not None and not protocol.transport.is_closing():
                protocol.transport.close()
        await server.wait_closed()
        log.info("mail.listener.stopped")


class ListenerThread:
    """The listener on its own thread and event loop (beside a web server in one process).

    ``run(stop, ready)`` is a coroutine function: it calls ``ready()`` once it listens, and
    returns after the :class:`asyncio.Event` ``stop`` is set."""

    def __init__(
        self,
        run: Callable[[asyncio.Event, Callable[[], None]], Any],
        *,
        name: str = "mail-listener",
    ) -> None:
        self._run = run
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await self._run(self._stop, self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by the caller; the thread must not die silently
            self.error = exc
            log.exception("mail.listener.crashed", thread=self._name)
        finally:
            self._ready.set()

    def start(self) -> None:
        """Start, and return once it listens (or has failed: see ``error``)."""
        self._thread.start()
        self._ready.wait()

    def stop(self, timeout: float = 40.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)


def tls_of(settings: Settings) -> ssl.SSLContext | None:
    """The listener's STARTTLS context from the settings (None: no TLS offered)."""
    context = server_tls(settings.smtp_listen_tls_cert, settings.smtp_listen_tls_key)
    if context is None and settings.smtp_listen_require_tls:
        raise ListenerSetupError(
            "SERVICECYCLE_SMTP_LISTEN_REQUIRE_TLS needs SERVICECYCLE_SMTP_LISTEN_TLS_CERT "
            "and SERVICECYCLE_SMTP_LISTEN_TLS_KEY"
        )
    return context
