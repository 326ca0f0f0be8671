"""E-mail out: build a message, send it through SMTP, or write it to disk when no server is set.

    message = build_message(settings, to="ana@example.com", subject="INC-7 resolved",
                            text="...", html="<p>...</p>", unsubscribe_url=url)
    send(settings, message)      # raises MailDeliveryError; .transient says whether to retry

Sending is slow and can fail: do it from a task (core.jobs), never in a request, and retry a
`transient` failure a bounded number of times (core.jobs.RetryLater). A `permanent` one (the
server refused the recipient or the sender, or the configuration is wrong) will not get better.

With no `OPSDECK_SMTP_HOST` (the default, embedded and distributed mode alike) each message is
written as an .eml file under `<data_dir>/mail/`, named so that they sort by time, for a new
user to read in any mail client or text editor. `OPSDECK_SMTP_SECURITY`: `starttls` (default,
port 587), `tls` (implicit TLS, port 465) or `none` (port 25, plain text); the server's
certificate is verified against the system's CAs or `OPSDECK_SMTP_CA_FILE`.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

import structlog

from opsdeck.core.security import new_token
from opsdeck.settings import Settings

log = structlog.get_logger("opsdeck.mail")

# Headers build_message sets itself; `headers=` may not replace them.
_OWN_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)


class MailDeliveryError(Exception):
    """A message was not delivered. `transient`: trying again later can help (the server was
    unreachable, timed out, or answered 4xx); otherwise it is permanent (5xx: recipient or
    sender refused, authentication failed; TLS or configuration problems). `code` is the SMTP
    reply code when the server gave one."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code

    @property
    def permanent(self) -> bool:
        return not self.transient

    def __repr__(self) -> str:
        return f"MailDeliveryError({self.message!r}, transient={self.transient}, code={self.code})"


def _one_line(text: str) -> str:
    """Header text on one line: CR, LF and other controls become spaces (a subject made from
    user input cannot start a header of its own)."""
    return " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text).split())


def _address(value: str) -> str:
    """One address (`ana@example.com` or `Ana <ana@example.com>`), or ValueError."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or "," in value:
        raise ValueError(f"not one e-mail address: {value!r}")
    name, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"not an e-mail address: {value!r}")
    return str(Address(display_name=name, addr_spec=address)) if name else address


def build_message(
    settings: Settings,
    *,
    to: str | Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
    unsubscribe_url: str | None = None,
) -> EmailMessage:
    """A message from OPSDECK_MAIL_FROM to `to` (one address or several): text, or
    multipart/alternative with `html` too, with Date and Message-ID. `unsubscribe_url` (an
    https or http URL whose POST unsubscribes, RFC 8058) adds `List-Unsubscribe` and
    `List-Unsubscribe-Post: List-Unsubscribe=One-Click`. The subject is kept on one line (line
    breaks become spaces); addresses and `headers` values with line breaks raise ValueError,
    as does a header that would replace one set here."""
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(_address(r) for r in recipients)
    message["Subject"] = _one_line(subject)
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=new_token(nbytes=6), domain=domain)
    if unsubscribe_url is not None:
        if (
            not unsubscribe_url.startswith(("https://", "http://"))
            or _one_line(unsubscribe_url) != unsubscribe_url
            or any(c in unsubscribe_url for c in " <>")
        ):
            raise ValueError(f"not an unsubscribe URL: {unsubscribe_url!r}")
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (headers or {}).items():
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"header {name} is set by build_message")
        if not name or any(c in name for c in ": ") or not name.isascii() or not name.isprintable():
            raise ValueError(f"not a header name: {name!r}")
        if any(c in value for c in "\r\n"):
            raise ValueError(f"header {name} may not contain line breaks")
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send(settings: Settings, message: EmailMessage) -> Path | None:
    """Deliver `message` through the configured SMTP server, or, with no OPSDECK_SMTP_HOST,
    write it under settings.mail_dir and return the file's path. Raises MailDeliveryError when
    no recipient got it. Recipients listed in Bcc get it and are not shown to the others. When
    the server refuses only some recipients the others still get it: that is logged, not
    raised (send one message per recipient to know each outcome)."""
    if not settings.smtp_host:
        try:
            return write_eml(settings.mail_dir, message)
        except OSError as exc:  # a full disk, a read-only mount: may be over later
            raise MailDeliveryError(
                f"cannot write the message under {settings.mail_dir} ({exc.strerror or exc})",
                transient=True,
            ) from exc
    refused = _deliver(settings, message)
    if refused:
        log.warning(
            "mail_recipients_refused",
            message_id=message["Message-ID"],
            codes=sorted({code for code, _ in refused.values()}),
            count=len(refused),
        )
    log.info("mail_sent", message_id=message["Message-ID"], host=settings.smtp_host)
    return None


def write_eml(directory: Path, message: EmailMessage) -> Path:
    """Write `message` to `directory` as `<UTC time>-<random>.eml` (they sort by time),
    atomically: a reader never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{stamp}-{new_token(nbytes=6)}.eml"
    partial = directory / f".{path.name}.partial"
    # Unix line ends (the SMTP wire format has CRLF): the file is for reading on this machine.
    data = message.as_bytes(policy=default_policy)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("mail_written", message_id=message["Message-ID"], path=path.name)
    return path


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The client TLS context for the SMTP server: system CAs or OPSDECK_SMTP_CA_FILE, and
    certificate and host name checks unless OPSDECK_SMTP_VERIFY_TLS=false."""
    try:
        context = ssl.create_default_context(
            cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise MailDeliveryError(
            f"OPSDECK_SMTP_CA_FILE={settings.smtp_ca_file}: cannot load it ({exc})",
            transient=False,
        ) from exc
    if not settings.smtp_verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _deliver(settings: Settings, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    host, port = settings.smtp_host, settings.smtp_port_resolved
    timeout = settings.smtp_timeout_seconds
    where = f"{host}:{port}"
    context = tls_context(settings) if settings.smtp_security != "none" else None
    try:
        if settings.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo()
            if settings.smtp_security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailDeliveryError(
                        f"the SMTP server {where} does not offer STARTTLS "
                        "(OPSDECK_SMTP_SECURITY=starttls)",
                        transient=False,
                    )
                client.starttls(context=context)
                client.ehlo()
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            return client.send_message(message)
    except MailDeliveryError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        transient = any(400 <= code < 500 for code in codes)
        first = next(iter(exc.recipients.values()))
        raise MailDeliveryError(
            f"the SMTP server {where} refused every recipient: {first[0]} {_text(first[1])}",
            transient=transient,
            code=first[0],
        ) from exc
    except smtplib.SMTPResponseException as exc:
        # Sender refused, data refused, authentication failed, HELO refused...
        transient = 400 <= exc.smtp_code < 500
        raise MailDeliveryError(
            f"the SMTP server {where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
            transient=transient,
            code=exc.smtp_code,
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise MailDeliveryError(
            f"the SMTP server {where} closed the connection ({exc})", transient=True
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise MailDeliveryError(
            f"the SMTP server {where} does not support what the settings ask for ({exc})",
            transient=False,
        ) from exc
    except smtplib.SMTPException as exc:
        raise MailDeliveryError(f"SMTP {where}: {exc}", transient=False) from exc
    except ssl.SSLCertVerificationError as exc:
        raise MailDeliveryError(
            f"the SMTP server {where} has a certificate we do not trust "
            f"({exc.verify_message}); see OPSDECK_SMTP_CA_FILE",
            transient=False,
        ) from exc
    except ssl.SSLError as exc:
        raise MailDeliveryError(
            f"TLS with the SMTP server {where} failed ({exc.reason or exc})", transient=False
        ) from exc
    except TimeoutError as exc:
        raise MailDeliveryError(
            f"the SMTP server {where} did not answer within {timeout:g} s", transient=True
        ) from exc
    except OSError as exc:  # refused, unreachable, name not resolved (may be temporary)
        raise MailDeliveryError(
            f"cannot reach the SMTP server {where} ({exc.strerror or exc})", transient=True
        ) from exc


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
