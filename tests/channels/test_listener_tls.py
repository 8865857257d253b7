"""The SMTP listener with a certificate: STARTTLS offered and used by smtplib (the server's
certificate checked against a test authority made here with `cryptography`), required when
configured, and bad TLS settings refused with the setting's name."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email.listener import (
    ListenerSetupError,
    server_tls,
    tls_of,
)
from servicecycle.channels.models import InboundMail
from servicecycle.config import Settings
from servicecycle.tickets.models import Ticket
from tests.channels.conftest import _certificates
from tests.channels.test_listener import Sessions, crlf, mail, running


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, and server.pem / server.key for localhost and 127.0.0.1 signed by it."""
    root = tmp_path_factory.mktemp("listener-tls")
    _certificates(root)
    return root


def client_context(certs: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.pem"))


def _send_tls(port: int, certs: Path, raw: bytes) -> tuple[bool, str | None]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        offered = client.has_extn("starttls")
        client.starttls(context=client_context(certs))
        client.ehlo("client.example")
        cipher = client.sock.cipher() if isinstance(client.sock, ssl.SSLSocket) else None
        client.sendmail("dana@example.com", ["help@desk.example"], crlf(raw))
    return offered, cipher[1] if cipher else None


async def test_starttls_is_offered_and_a_mail_sent_over_it_becomes_a_ticket(
    sessions: Sessions, db: AsyncSession, certs: Path
) -> None:
    tls = server_tls(certs / "server.pem", certs / "server.key")
    raw = mail("dana@example.com", "Sent privately", "Hello", Message_ID="<tls1@ex.com>")
    async with running(sessions, tls=tls) as listener:
        offered, protocol = await asyncio.to_thread(_send_tls, listener.port, certs, raw.as_bytes())
    assert offered and protocol in {"TLSv1.2", "TLSv1.3"}
    logged = (
        await db.scalars(select(InboundMail).where(InboundMail.message_id == "<tls1@ex.com>"))
    ).one()
    ticket = await db.get(Ticket, logged.ticket_id)
    assert ticket is not None and ticket.subject == "Sent privately"


def _plain_attempt(port: int) -> tuple[bool, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        return client.has_extn("starttls"), client.mail("dana@example.com")


async def test_without_a_certificate_no_starttls_is_offered(sessions: Sessions) -> None:
    async with running(sessions) as listener:
        offered, answer = await asyncio.to_thread(_plain_attempt, listener.port)
    assert not offered and answer[0] == 250


async def test_when_tls_is_required_plain_mail_is_refused_and_nothing_is_stored(
    sessions: Sessions, db: AsyncSession, certs: Path
) -> None:
    tls = server_tls(certs / "server.pem", certs / "server.key")
    before = len((await db.scalars(select(InboundMail.id))).all())
    async with running(sessions, tls=tls, require_tls=True) as listener:
        offered, answer = await asyncio.to_thread(_plain_attempt, listener.port)
        assert offered and answer[0] == 530 and b"STARTTLS" in answer[1]
        raw = mail("dana@example.com", "Over TLS only", "Hi", Message_ID="<tls2@ex.com>")
        await asyncio.to_thread(_send_tls, listener.port, certs, raw.as_bytes())
    stored = (await db.scalars(select(InboundMail.message_id))).all()
    assert len(stored) == before + 1 and "<tls2@ex.com>" in stored


def test_bad_tls_settings_are_refused_by_name(certs: Path, tmp_path: Path) -> None:
    assert server_tls(None, None) is None
    with pytest.raises(ListenerSetupError, match="Set both"):
        server_tls(certs / "server.pem", None)
    with pytest.raises(ListenerSetupError, match="not found"):
        server_tls(tmp_path / "missing.pem", certs / "server.key")
    with pytest.raises(ListenerSetupError, match="cannot be used"):
        server_tls(certs / "ca.pem", certs / "server.key")  # the key is not the CA's
    settings = Settings(data_dir=tmp_path, smtp_listen_require_tls=True)
    with pytest.raises(ListenerSetupError, match="REQUIRE_TLS needs"):
        tls_of(settings)
    good = Settings(
        data_dir=tmp_path,
        smtp_listen_tls_cert=certs / "server.pem",
        smtp_listen_tls_key=certs / "server.key",
    )
    assert isinstance(tls_of(good), ssl.SSLContext)
