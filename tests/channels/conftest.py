"""A real IMAP server for the channel tests: Debian's dovecot, run unprivileged in a temporary
folder on a free port of 127.0.0.1 (no system service, no standard port).

Where dovecot is not installed the tests that need it are skipped with the reason, unless
``SERVICECYCLE_REQUIRE_DOVECOT=1`` (CI), which makes them fail instead.
"""

from __future__ import annotations

import grp
import imaplib
import ipaddress
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

_users = itertools.count(1)
USERS = 500
PASSWORD = "mail-secret-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dovecot() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if Path(p).exists()), None
    )


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class ImapAccount:
    """One user's mail on the test server, reached the way a mail client would."""

    host: str
    port: int
    username: str
    password: str

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(self.username, self.password)
        return imap

    def append(self, raw: bytes, *, folder: str = "INBOX", flags: str = "") -> int:
        """Put a mail into ``folder`` (unread unless flags say otherwise); its UID."""
        imap = self.connect()
        try:
            status, data = imap.append(f'"{folder}"', flags or None, None, raw)
            assert status == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0])
            assert found is not None, data
            return int(found[1])
        finally:
            imap.logout()

    def flags(self, uid: int, *, folder: str = "INBOX") -> set[str]:
        imap = self.connect()
        try:
            imap.select(f'"{folder}"', readonly=True)
            status, data = imap.uid("FETCH", str(uid), "(FLAGS)")
            assert status == "OK" and data and data[0], data
            found = re.search(rb"FLAGS \(([^)]*)\)", data[0])  # type: ignore[arg-type]
            return set(found[1].decode().split()) if found else set()
        finally:
            imap.logout()

    def count(self, *, folder: str = "INBOX") -> int:
        imap = self.connect()
        try:
            _, data = imap.select(f'"{folder}"', readonly=True)
            return int(data[0])  # type: ignore[arg-type]
        finally:
            imap.logout()

    def command(self, name: str, *args: str) -> None:
        """Run one mailbox command (CREATE, DELETE, RENAME) outside any folder."""
        imap = self.connect()
        try:
            status, data = getattr(imap, name)(*args)
            assert status == "OK", data
        finally:
            imap.logout()


@dataclass
class ImapServer:
    host: str
    port: int  # plain IMAP, STARTTLS offered
    root: Path
    tls_port: int = 0  # IMAP over TLS
    ca_file: Path = Path()  # the authority that signed the server's certificate

    def account(self) -> ImapAccount:
        """A user of its own, with an empty mailbox."""
        n = next(_users)
        assert n <= USERS, "more test accounts than the server was given"
        return ImapAccount(self.host, self.port, f"desk{n}", PASSWORD)


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    binary = _dovecot()
    if binary is None:
        reason = "dovecot is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("SERVICECYCLE_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"SERVICECYCLE_REQUIRE_DOVECOT=1 but {reason}")
        pytest.skip(reason)
    # not under pytest's temporary folder: as root, that is closed to dovecot's own user
    root = Path(tempfile.mkdtemp(prefix="servicecycle-dovecot-"))
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    # every account made up front: dovecot notices a changed user file only a second later
    (root / "users").write_text(
        "".join(f"desk{n}:{{PLAIN}}{PASSWORD}::::::\n" for n in range(1, USERS + 1))
    )
    # dovecot refuses to run its login processes as root: as root, run it as its own user
    me = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    port, tls_port = _free_port(), _free_port()
    _certificates(root)
    (root / "dovecot.conf").write_text(
        CONFIG.format(
            root=root,
            port=port,
            tls_port=tls_port,
            user=me.pw_name,
            group=grp.getgrgid(me.pw_gid).gr_name,
            uid=me.pw_uid,
            gid=me.pw_gid,
        )
    )
    if os.geteuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, me.pw_uid, me.pw_gid)
    process = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        user=me.pw_uid if os.geteuid() == 0 else None,
        group=me.pw_gid if os.geteuid() == 0 else None,
        extra_groups=[] if os.geteuid() == 0 else None,
    )
    try:
        _wait_for(port, process, root)
        yield ImapServer("127.0.0.1", port, root, tls_port, root / "ca.pem")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _certificates(root: Path) -> None:
    """A test authority (ca.pem) and the server's key and certificate for localhost and
    127.0.0.1 signed by it, so TLS can be checked for real, not switched off."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Servicecycle test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "server.pem").write_bytes(cert.public_bytes(pem))
    (root / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _wait_for(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    """Until dovecot greets on its port (or has died, with its log as the reason)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"dovecot stopped: {output}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not start within 30 seconds")


@pytest.fixture
def imap_account(imap_server: ImapServer) -> ImapAccount:
    return imap_server.account()
