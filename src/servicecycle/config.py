"""Settings read from the environment (``SERVICECYCLE_*`` and ``DATABASE_URL``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicecycle.kit.secrets import Keyring, load_or_create_key


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("servicecycle", appauthor=False))


class Settings(BaseSettings):
    """The effective configuration of one Servicecycle process."""

    model_config = SettingsConfigDict(
        env_prefix="SERVICECYCLE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "SERVICECYCLE_DATABASE_URL"),
        description="External PostgreSQL; unset means the embedded server in data_dir.",
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str | None = Field(
        default=None, description="Public URL, e.g. https://help.example.com (sets Secure cookies)."
    )
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    session_days: int = 14
    login_max_failures: int = 5
    login_window_minutes: int = 15
    max_request_bytes: int = 25 * 1024 * 1024
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, description="Largest file accepted")
    attachment_storage: Literal["database", "folder"] = Field(
        default="database",
        description="Where files are kept: in PostgreSQL, or under data_dir/attachments",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For/-Proto (comma-separated, or *).",
    )
    smtp_host: str = Field(default="localhost", description="Where outgoing mail is handed over")
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = Field(default="help@servicecycle.localhost", description="The desk's address")
    smtp_listen_host: str = Field(
        default="127.0.0.1", description="Where `servicecycle mail-listener` takes mail by SMTP"
    )
    smtp_listen_port: int = 2525
    smtp_listen_domains: str | None = Field(
        default=None,
        description="Comma-separated domains or addresses the listener accepts mail for "
        "(unset: any recipient)",
    )
    desk_time_zone: str = Field(
        default="UTC",
        description="Time zone of times told to customers when no business calendar applies",
    )
    desk_name: str = Field(
        default="Help centre", description="The desk's name, as customers see it", min_length=1
    )
    portal_link_minutes: int = Field(
        default=20, ge=1, le=1440, description="How long a portal sign-in link works"
    )
    chat_allowed_origins: str = Field(
        default="*",
        description="Sites that may embed the chat widget: * or comma-separated origins",
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description="Allow webhook targets on loopback or private networks (no SSRF guard)",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for encrypted secrets and signed links (default: made in data_dir)",
    )
    worker_concurrency: int = 4
    db_pool_size: int = 10
    imap_idle: bool = Field(
        default=True,
        description="Watch IMAP mailboxes with IDLE where the server offers it (false: poll only)",
    )
    smtp_listen_tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) the mail listener offers by STARTTLS"
    )
    smtp_listen_tls_key: Path | None = Field(
        default=None, description="PEM private key of smtp_listen_tls_cert"
    )
    smtp_listen_require_tls: bool = Field(
        default=False, description="Refuse mail by SMTP until the sender has used STARTTLS"
    )

    @property
    def listen_domains(self) -> tuple[str, ...]:
        """``smtp_listen_domains`` as lower-case entries; empty means any recipient."""
        raw = self.smtp_listen_domains or ""
        return tuple(part.strip().lower() for part in raw.split(",") if part.strip())

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def keyring(self) -> Keyring:
        """Encryption and link signing from ``secret_key``, or a key kept in ``data_dir``."""
        if self.secret_key is not None:
            return Keyring(self.secret_key.get_secret_value().encode())
        return Keyring(load_or_create_key(self.data_dir / "secret.key"))

    @property
    def secure_cookies(self) -> bool:
        return bool(self.base_url and self.base_url.startswith("https://"))

    def masked(self) -> dict[str, Any]:
        """Every setting, with secrets and passwords in URLs replaced by ``***``."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = mask_url(value.get_secret_value()) if name.endswith("url") else "***"
            shown[name] = str(value) if isinstance(value, Path) else value
        shown["embedded"] = self.embedded
        return shown


def mask_url(url: str) -> str:
    """Hide the password in a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "***"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
