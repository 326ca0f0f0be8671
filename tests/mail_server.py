"""A real SMTP server for the tests (aiosmtpd), on a free loopback port, that keeps what it
receives; and a self-signed certificate for its TLS.

Use the fixtures in tests/conftest.py: `smtp_server` (plain SMTP, no TLS, no AUTH) or
`make_smtp_server(...)` for STARTTLS, implicit TLS and AUTH, and `smtp_certificate`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for `localhost` and 127.0.0.1: `cert_file` is also the CA
    file a client trusts it with."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(directory: Path, common_name: str = "localhost") -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(common_name), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{common_name}.crt"
    key_file = directory / f"{common_name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class SmtpServer:
    """A running aiosmtpd server. `messages`: what it accepted, parsed (`received` adds the
    envelopes). `refuse[address] = "550 5.1.1 No such user"` refuses a recipient with that
    reply (a 4xx reply refuses it for now). `stop()` shuts it down: connections to `port` are
    then refused, as when the SMTP server is down."""

    port: int
    host: str = HOST
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [item.message for item in self.received]

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    # -- aiosmtpd handler hooks ------------------------------------------------------------

    async def handle_RCPT(  # noqa: N802 (aiosmtpd names its hooks so)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw)
            )
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_smtp_server(
    *,
    certificate: Certificate | None = None,
    security: str = "none",
    users: dict[str, str] | None = None,
) -> SmtpServer:
    """`security`: `none` (plain), `starttls` (offered and required before MAIL) or `tls`
    (implicit TLS from the first byte); those two need `certificate`. `users`: accounts for
    AUTH (`server.logins` lists the successful ones); with starttls AUTH is required, after
    TLS."""
    server = SmtpServer(port=free_port())
    options: dict[str, Any] = {"hostname": HOST, "port": server.port}
    if security in ("starttls", "tls"):
        assert certificate is not None, "TLS needs a certificate"
    if security == "starttls":
        assert certificate is not None
        options.update(tls_context=certificate.server_context(), require_starttls=True)
    elif security == "tls":
        assert certificate is not None
        options.update(ssl_context=certificate.server_context())
    if users is not None:

        def authenticate(
            smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and users.get(data.login.decode()) == data.password.decode()
            )
            if ok:
                server.logins.append(data.login.decode())
            # handled=False: aiosmtpd answers the failure itself (535).
            return AuthResult(success=ok, handled=False)

        # Over STARTTLS, AUTH is offered (and required) only once TLS is up. aiosmtpd does not
        # see implicit TLS as TLS: there AUTH is offered from the start, and not required
        # (aiosmtpd warns about requiring AUTH without requiring TLS).
        starttls = security == "starttls"
        options.update(
            authenticator=authenticate, auth_required=starttls, auth_require_tls=starttls
        )
    controller = Controller(server, **options)
    controller.start()
    server.controller = controller
    return server
