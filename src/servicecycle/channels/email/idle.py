"""IMAP IDLE (RFC 2177): one connection per mailbox that waits for the server to say that
mail has arrived.

The standard library's ``imaplib`` (before Python 3.14) cannot wait for a server's news
with a timeout, so this module speaks the few commands the watcher needs over an asyncio
stream: greeting, ``STARTTLS``, ``LOGIN``, ``CAPABILITY``, ``EXAMINE``, ``IDLE``/``DONE``
and ``LOGOUT``. The mail itself is still fetched and stored by :mod:`imap`'s poll, on a
connection of its own, with all of its guarantees. This connection only reads: it opens
the folder with ``EXAMINE`` and never changes a flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Collection
from typing import Literal

from servicecycle.channels.email.imap import TIMEOUT_SECONDS, ImapError
from servicecycle.channels.mailboxes import Login

# RFC 2177 asks clients to end IDLE within 29 minutes; servers may drop a quiet
# connection after 30. Re-issuing it a little earlier keeps clear of both.
IDLE_SECONDS = 25 * 60
LINE_LIMIT = 1 << 20
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* \d+ EXISTS\r?\n?$", re.IGNORECASE)
_CAPABILITY = re.compile(rb"\[CAPABILITY ([^\]]*)\]|^\* CAPABILITY (.*)$", re.IGNORECASE)
_SAFE = re.compile(r"^[\x20-\x7e]*$")


def watch_mode(
    capabilities: Collection[str], *, idle_enabled: bool = True
) -> Literal["idle", "poll"]:
    """How to follow a mailbox: ``idle`` when the server offers IDLE (named, or implied by
    IMAP4rev2, RFC 9051, where it is required) and IDLE is not switched off; else ``poll``."""
    offered = {word.upper() for word in capabilities}
    if idle_enabled and ("IDLE" in offered or "IMAP4REV2" in offered):
        return "idle"
    return "poll"


def _arguments(values: tuple[str, ...]) -> list[bytes]:
    """The command's arguments as the pieces to send: after each piece but the last the
    server must answer ``+`` (a literal follows). Quoted strings where they can carry the
    text, literals where they cannot (line breaks, 8-bit)."""
    pieces = [b""]
    for value in values:
        if _SAFE.match(value):
            pieces[-1] += b' "' + value.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
        else:
            data = value.encode("utf-8")
            pieces[-1] += b" {%d}" % len(data)
            pieces.append(data)
    return pieces


class IdleConnection:
    """A logged-in IMAP session on one folder, able to wait in IDLE."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._tags = 0
        self._idling = False
        self.capabilities: set[str] = set()

    # -- the wire -------------------------------------------------------------------------

    async def _line(self, wait: float | None = None) -> bytes:
        """One response line, literals included (``{n}`` and the bytes that follow). With
        ``wait`` a quiet server raises ``TimeoutError`` after that long; without, a server
        silent for ``TIMEOUT_SECONDS`` is a lost connection."""
        try:
            line = await asyncio.wait_for(self._reader.readline(), wait or TIMEOUT_SECONDS)
            while (literal := _LITERAL.search(line)) is not None:
                line += await asyncio.wait_for(
                    self._reader.readexactly(int(literal[1])), TIMEOUT_SECONDS
                )
                line += await asyncio.wait_for(self._reader.readline(), TIMEOUT_SECONDS)
        except TimeoutError as exc:
            if wait is not None:
                raise
            raise ImapError(f"No answer within {TIMEOUT_SECONDS:.0f} s") from exc
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as exc:
            raise ImapError(f"Connection lost: {exc or type(exc).__name__}") from exc
        if not line:
            raise ImapError("The server closed the connection")
        if line.upper().startswith(b"* BYE"):
            raise ImapError(f"The server closed the connection: {_words(line[6:])}")
        self._note_capabilities(line)
        return line

    def _note_capabilities(self, line: bytes) -> None:
        found = _CAPABILITY.search(line.rstrip(b"\r\n"))
        if found is not None:
            words = (found[1] or found[2] or b"").decode("ascii", "replace").split()
            self.capabilities = {word.upper() for word in words}

    async def _send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), TIMEOUT_SECONDS)
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise ImapError(f"Connection lost: {exc or type(exc).__name__}") from exc

    async def command(self, name: str, *args: str) -> list[bytes]:
        """Send a command and read to its tagged answer: the untagged lines before it.
        A ``NO`` or ``BAD`` answer raises :class:`ImapError` with the server's words."""
        self._tags += 1
        tag = b"w%d" % self._tags
        pieces = _arguments(args)
        pieces[0] = tag + b" " + name.encode() + pieces[0]
        for piece in pieces[:-1]:
            await self._send(piece + b"\r\n")
            while not (line := await self._line()).startswith(b"+"):
                if line.startswith(tag + b" "):
                    raise ImapError(f"The server refused {name}: {_words(line)}")
        await self._send(pieces[-1] + b"\r\n")
        untagged: list[bytes] = []
        while True:
            line = await self._line()
            if line.startswith(tag + b" "):
                status = line[len(tag) + 1 :].split(b" ", 1)[0].upper()
                if status != b"OK":
                    raise ImapError(f"The server refused {name}: {_words(line)}")
                return untagged
            untagged.append(line)

    # -- the session ----------------------------------------------------------------------

    @classmethod
    async def open(cls, login: Login) -> IdleConnection:
        """Connect, secure the connection as configured, log in and learn the capabilities."""
        where = f"{login.host}:{login.port}"
        context = ssl.create_default_context() if login.security != "none" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    login.host,
                    login.port,
                    ssl=context if login.security == "ssl" else None,
                    limit=LINE_LIMIT,
                ),
                TIMEOUT_SECONDS,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ImapError(f"Cannot connect to {where}: {exc or type(exc).__name__}") from exc
        connection = cls(reader, writer)
        try:
            greeting = await connection._line()
            if not greeting.upper().startswith(b"* OK"):
                raise ImapError(f"Unexpected greeting from {where}: {_words(greeting)}")
            if login.security == "starttls":
                await connection.command("STARTTLS")
                assert context is not None
                try:
                    await writer.start_tls(context, server_hostname=login.host)
                except (OSError, ssl.SSLError) as exc:
                    raise ImapError(f"TLS with {where} failed: {exc}") from exc
            try:
                await connection.command("LOGIN", login.username, login.password)
            except ImapError as exc:
                raise ImapError(f"Login failed: {exc}") from exc
            await connection.command("CAPABILITY")
        except BaseException:
            await connection.close(polite=False)
            raise
        return connection

    async def examine(self, folder: str) -> None:
        """Open ``folder`` read-only: the IDLE connection never changes anything."""
        await self.command("EXAMINE", folder)

    async def idle(self, seconds: float) -> bool:
        """Wait in IDLE until the server reports a new message (True) or ``seconds`` pass
        (False); either way IDLE is ended (``DONE``) before returning."""
        self._tags += 1
        tag = b"w%d" % self._tags
        await self._send(tag + b" IDLE\r\n")
        self._idling = True
        arrived = False
        while not (line := await self._line()).startswith(b"+"):
            if line.startswith(tag + b" "):
                raise ImapError(f"The server refused IDLE: {_words(line)}")
            arrived = arrived or bool(_EXISTS.match(line))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not arrived:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                line = await self._line(left)
            except TimeoutError:
                break
            arrived = bool(_EXISTS.match(line))
        await self._send(b"DONE\r\n")
        self._idling = False
        while not (line := await self._line()).startswith(tag + b" "):
            arrived = arrived or bool(_EXISTS.match(line))
        return arrived

    async def close(self, *, polite: bool = True) -> None:
        """Log out (when asked and still possible) and close the connection."""
        if polite:
            with contextlib.suppress(ImapError, TimeoutError):
                if self._idling:  # stopped while waiting: the server expects DONE first
                    self._idling = False
                    await self._send(b"DONE\r\n")
                await asyncio.wait_for(self.command("LOGOUT"), 5)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self._writer.wait_closed(), 5)


def _words(line: bytes) -> str:
    return line.decode("utf-8", "replace").strip()[:300]
