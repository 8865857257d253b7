"""Password and token hashing. Passwords: argon2id. Random tokens: SHA-256 (high entropy)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A real hash to verify against when the account does not exist, so a wrong e-mail
    costs the same time as a wrong password (no user enumeration by timing). Made on first
    use: hashing costs ~0.15 s, too much for every process start."""
    return _hasher.hash(secrets.token_urlsafe(16))


MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class Hashed:
    """A password hashed once, for several accounts given the same one (the demo's staff
    share its published password): hashing costs ~0.2 s of CPU each time."""

    value: str


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
