"""A local SMTP server that takes every mail and keeps none: where replayed history's mail goes.

The simulated desk queues acknowledgements, replies and survey invitations in the outbox like
the real one does. Those mails belong to the past: nobody may receive them, yet they must not
stay queued, or the first worker of a demo would send months of old mail. So the driver hands
them to this sink through the outbox's own delivery (``outbox.deliver``): each row is claimed,
spoken over SMTP and settled ``sent`` with its ``mail.sent`` event, exactly as a real delivery,
and the recipient is a server that answers 250 and drops the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session


class _Drop:
    """Accept whatever is sent, count it, keep nothing."""

    def __init__(self) -> None:
        self.taken = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.taken += 1
        return "250 Dropped (simulated history)"


@dataclass(frozen=True)
class Sink:
    host: str
    port: int
    handler: _Drop

    @property
    def taken(self) -> int:
        return self.handler.taken


@contextlib.asynccontextmanager
async def null_sink() -> AsyncIterator[Sink]:
    """An SMTP server on a free loopback port, in the running event loop, for the block."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    handler = _Drop()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="servicecycle-simulation"), host="127.0.0.1", port=0
    )
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield Sink(host=host, port=int(port), handler=handler)
    finally:
        server.close()
        await server.wait_closed()
