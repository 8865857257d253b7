"""Signing a delivery and checking a signature, as a receiver would. Pure.

``Servicecycle-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` where
``timestamp`` is the ``Servicecycle-Timestamp`` header (Unix seconds) and ``body`` the raw
request body. A receiver recomputes it, compares in constant time, and refuses timestamps
older than a few minutes (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "v1"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(
    secret: str, *, header: str, timestamp: str, body: bytes, now: float, tolerance: int = 300
) -> bool:
    """Does ``header`` (one or more ``v1=...`` separated by commas) sign this body, recently?"""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    expected = signature(secret, int(timestamp), body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))
