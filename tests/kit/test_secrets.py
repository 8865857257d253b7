from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from servicecycle.config import Settings
from servicecycle.kit.secrets import BadToken, Keyring, load_or_create_key

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ring = Keyring(b"k" * 32)


def test_encrypted_text_reads_back_and_tampering_is_refused() -> None:
    token = ring.encrypt("imap-password")
    assert "imap-password" not in token
    assert ring.decrypt(token) == "imap-password"
    with pytest.raises(BadToken):
        ring.decrypt(token[:-4] + "AAAA")
    with pytest.raises(BadToken):
        Keyring(b"x" * 32).decrypt(token)


def test_a_signed_token_carries_its_payload_until_it_expires() -> None:
    token = ring.sign("magic", {"customer": 7}, expires_at=NOW + timedelta(minutes=15))
    assert ring.unsign("magic", token, now=NOW) == {"customer": 7}
    with pytest.raises(BadToken, match="expired"):
        ring.unsign("magic", token, now=NOW + timedelta(minutes=15))


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t.replace(t[3], "A" if t[3] != "A" else "B", 1),  # payload altered
        lambda t: t.split(".")[0],  # signature dropped
        lambda t: t + "x",  # signature altered
        lambda t: "not a token",
    ],
)
def test_a_forged_token_is_refused(forge: object) -> None:
    token = ring.sign("magic", {"customer": 7}, expires_at=None)
    with pytest.raises(BadToken, match="invalid"):
        ring.unsign("magic", forge(token), now=NOW)  # type: ignore[operator]


def test_a_token_for_one_purpose_does_not_pass_as_another() -> None:
    token = ring.sign("survey", {"customer": 7}, expires_at=None)
    with pytest.raises(BadToken):
        ring.unsign("magic", token, now=NOW)


def test_the_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    key = load_or_create_key(path)
    assert load_or_create_key(path) == key and len(key) == 32
    assert path.stat().st_mode & 0o077 == 0
    settings = Settings(data_dir=tmp_path)
    assert settings.keyring().decrypt(Keyring(key).encrypt("x")) == "x"
    assert "secret_key" in settings.masked()
