"""Secrets at rest and signed links, from one key.

``Keyring`` encrypts what must be read back (mailbox passwords, webhook secrets) and signs
what is handed out (magic links, survey links) so a change to a single byte is refused.
Each use gets its own sub-key (HKDF with a purpose), so a token of one kind never passes
as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class BadToken(Exception):
    """A signed token that was altered, made for another purpose, or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" | "expired"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """Encryption and signing derived from one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("The secret key must be at least 32 bytes")
        self._secret = secret

    def _derive(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._secret
        )

    def encrypt(self, plain: str) -> str:
        """Encrypt text for storage (authenticated: tampering is detected on decrypt)."""
        fernet = Fernet(base64.urlsafe_b64encode(self._derive("encrypt")))
        return fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        fernet = Fernet(base64.urlsafe_b64encode(self._derive("encrypt")))
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise BadToken("invalid") from exc

    def sign(self, purpose: str, payload: dict[str, Any], *, expires_at: datetime | None) -> str:
        """A URL-safe token carrying ``payload`` for one ``purpose``, valid until ``expires_at``."""
        body = dict(payload)
        if expires_at is not None:
            body["exp"] = int(expires_at.timestamp())
        data = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._derive(f"sign:{purpose}"), data.encode(), hashlib.sha256).digest()
        return f"{data}.{_b64(mac)}"

    def unsign(self, purpose: str, token: str, *, now: datetime) -> dict[str, Any]:
        """The payload of a token made by ``sign`` for this purpose, or ``BadToken``."""
        data, _, mac = token.partition(".")
        try:
            expected = hmac.new(
                self._derive(f"sign:{purpose}"), data.encode(), hashlib.sha256
            ).digest()
            if not mac or not hmac.compare_digest(expected, _unb64(mac)):
                raise BadToken("invalid")
            body: dict[str, Any] = json.loads(_unb64(data))
        except (ValueError, UnicodeError) as exc:
            raise BadToken("invalid") from exc
        exp = body.pop("exp", None)
        if exp is not None and now >= datetime.fromtimestamp(int(exp), UTC):
            raise BadToken("expired")
        return body


def load_or_create_key(path: Path) -> bytes:
    """The key kept in ``path``, made (random, readable by its owner only) on first use."""
    if path.exists():
        return _unb64(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    path.touch(mode=0o600)
    path.write_text(_b64(key) + "\n")
    return key
