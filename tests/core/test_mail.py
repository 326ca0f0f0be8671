"""core.mail against a real local SMTP server (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH;
the .eml fallback; failures sorted into transient and permanent; header injection. And the
signed tokens one-click unsubscribe links carry (core.security)."""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import socket
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from opsdeck.core.mail import MailDeliveryError, build_message, send
from opsdeck.core.security import TokenError, read_token, sign_token
from opsdeck.settings import Settings
from tests.conftest import SmtpServerFactory, make_settings, smtp_overrides
from tests.mail_server import Certificate, SmtpServer

TO = "ana@example.com"
SECRET = b"test-secret-key-that-is-long-enough-0123456789"
# The test SMTP account's password, made up at run time (with a space: sent as it is).
PASSWORD = f"pass {secrets.token_urlsafe(8)}"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path, mail_from="OpsDeck <opsdeck@ops.example.com>", **overrides)


def _message(settings: Settings, **overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "to": TO,
        "subject": "INC-7 resolved",
        "text": "INC-7 is resolved.\n",
        "html": "<p>INC-7 is <b>resolved</b>.</p>",
    }
    values.update(overrides)
    return build_message(settings, **values)


def _parts(message: EmailMessage) -> dict[str, str]:
    parts = {}
    for part in message.walk():
        if not part.is_multipart():
            assert isinstance(part, EmailMessage)
            parts[part.get_content_type()] = str(part.get_content())
    return parts


# -- building ---------------------------------------------------------------------------------


def test_build_message_has_both_parts_and_the_usual_headers(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    message = _message(
        settings,
        unsubscribe_url="https://ops.example.com/api/v1/unsubscribe?t=abc",
        headers={"X-OpsDeck-Incident": "INC-7"},
    )

    assert message.get_content_type() == "multipart/alternative"
    assert _parts(message) == {
        "text/plain": "INC-7 is resolved.\n",
        "text/html": "<p>INC-7 is <b>resolved</b>.</p>\n",
    }
    assert message["From"] == "OpsDeck <opsdeck@ops.example.com>"
    assert message["To"] == TO
    assert message["Subject"] == "INC-7 resolved"
    assert message["Date"]
    assert message["Message-ID"].endswith("@ops.example.com>")
    assert message["List-Unsubscribe"] == "<https://ops.example.com/api/v1/unsubscribe?t=abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-OpsDeck-Incident"] == "INC-7"
    assert _message(settings)["Message-ID"] != message["Message-ID"]


def test_text_only_and_no_unsubscribe(tmp_path: Path) -> None:
    message = _message(_settings(tmp_path), html=None, to=["a@example.com", "B <b@example.com>"])
    assert message.get_content_type() == "text/plain"
    assert message["To"] == "a@example.com, B <b@example.com>"
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


def test_a_subject_with_line_breaks_cannot_add_headers(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server))
    message = _message(settings, subject="Disk full\r\nBcc: eve@evil.example\r\n\r\nbody")

    send(settings, message)

    [got] = smtp_server.received
    assert got.rcpt_tos == [TO]
    assert got.message["Bcc"] is None
    assert got.message["Subject"] == "Disk full Bcc: eve@evil.example body"
    assert b"\r\nBcc:" not in got.raw


@pytest.mark.parametrize(
    "bad",
    [
        {"to": "ana@example.com\r\nBcc: eve@evil.example"},
        {"to": "ana@example.com, eve@evil.example"},
        {"to": "not an address"},
        {"to": "ana maria@example.com"},
        {"to": []},
        {"headers": {"X-Thing": "a\r\nBcc: eve@evil.example"}},
        {"headers": {"X-Thing\r\nBcc": "eve@evil.example"}},
        {"headers": {"Bcc: eve@evil.example\r\nX": "1"}},
        {"headers": {"From": "eve@evil.example"}},
        {"headers": {"subject": "another subject"}},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"unsubscribe_url": "https://x.example/u>\r\nBcc: eve@evil.example"},
    ],
)
def test_injection_in_addresses_headers_and_urls_is_refused(
    tmp_path: Path, bad: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"."):
        _message(_settings(tmp_path), **bad)


def test_mail_from_and_security_settings_are_checked(tmp_path: Path) -> None:
    for bad in (
        "nope",
        "a@example.com\r\nBcc: eve@evil.example",
        "a@x.example, b@y.example",
        "ops deck@example.com",
    ):
        with pytest.raises(ValidationError, match="mail_from"):
            make_settings(tmp_path, mail_from=bad)
    with pytest.raises(ValidationError, match="smtp_security"):
        make_settings(tmp_path, smtp_security="ssl")
    assert make_settings(tmp_path, smtp_security="STARTTLS").smtp_security == "starttls"
    ports = {
        security: make_settings(tmp_path, smtp_security=security).smtp_port_resolved
        for security in ("none", "starttls", "tls")
    }
    assert ports == {"none": 25, "starttls": 587, "tls": 465}
    assert make_settings(tmp_path, smtp_port=2525).smtp_port_resolved == 2525
    with pytest.raises(ValidationError, match="in clear"):
        make_settings(
            tmp_path,
            environment="production",
            database_url="postgresql+psycopg://u:p@db/opsdeck",
            smtp_host="mail.example.com",
            smtp_username="opsdeck",
            smtp_security="none",
        )


# -- no SMTP host: .eml files -------------------------------------------------------------------


def test_without_a_host_messages_are_written_as_eml_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.smtp_host == ""
    first = _message(settings, subject="first")
    second = _message(settings, subject="second")

    first_path = send(settings, first)
    second_path = send(settings, second)

    assert first_path is not None
    assert second_path is not None
    assert first_path.parent == tmp_path / "mail"
    # Sorted by name is sorted by time; nothing half-written is left behind.
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == [
        first_path.name,
        second_path.name,
    ]
    assert first_path.suffix == ".eml"
    assert os.stat(first_path).st_mode & 0o777 == 0o600
    parsed = email.message_from_bytes(first_path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "first"
    assert parsed["Message-ID"] == first["Message-ID"]
    assert _parts(parsed)["text/plain"] == "INC-7 is resolved.\n"


def test_an_unwritable_mail_folder_is_transient(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.mail_dir.write_text("a file where the folder should be")
    with pytest.raises(MailDeliveryError, match="cannot write") as failure:
        send(settings, _message(settings))
    assert failure.value.transient


# -- SMTP --------------------------------------------------------------------------------------


def test_plain_smtp_delivery(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server))
    message = _message(settings, unsubscribe_url="https://ops.example.com/u?t=1")

    assert send(settings, message) is None

    [got] = smtp_server.received
    assert got.mail_from == "opsdeck@ops.example.com"
    assert got.rcpt_tos == [TO]
    assert got.message["Message-ID"] == message["Message-ID"]
    assert got.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # (Read back from the wire, where lines end in CRLF.)
    assert _parts(got.message)["text/html"] == "<p>INC-7 is <b>resolved</b>.</p>\r\n"
    assert not (tmp_path / "mail").exists()


def test_starttls_delivery_with_auth(
    tmp_path: Path, make_smtp_server: SmtpServerFactory, smtp_certificate: Certificate
) -> None:
    server = make_smtp_server(security="starttls", users={"opsdeck": PASSWORD})
    settings = _settings(
        tmp_path,
        **smtp_overrides(
            server,
            "starttls",
            smtp_ca_file=smtp_certificate.cert_file,
            smtp_username="opsdeck",
            smtp_password=PASSWORD,
        ),
    )

    send(settings, _message(settings))

    assert server.logins == ["opsdeck"]
    assert [m["Subject"] for m in server.messages] == ["INC-7 resolved"]


def test_a_wrong_password_is_permanent(
    tmp_path: Path, make_smtp_server: SmtpServerFactory, smtp_certificate: Certificate
) -> None:
    server = make_smtp_server(security="starttls", users={"opsdeck": PASSWORD})
    settings = _settings(
        tmp_path,
        **smtp_overrides(
            server,
            "starttls",
            smtp_ca_file=smtp_certificate.cert_file,
            smtp_username="opsdeck",
            smtp_password=PASSWORD + "-not",
        ),
    )
    with pytest.raises(MailDeliveryError) as failure:
        send(settings, _message(settings))
    assert failure.value.permanent
    assert failure.value.code == 535
    assert server.messages == []


def test_starttls_refuses_an_untrusted_certificate(
    tmp_path: Path, make_smtp_server: SmtpServerFactory
) -> None:
    server = make_smtp_server(security="starttls")
    settings = _settings(tmp_path, **smtp_overrides(server, "starttls"))
    with pytest.raises(MailDeliveryError, match="certificate") as failure:
        send(settings, _message(settings))
    assert failure.value.permanent
    assert server.messages == []

    # Verification off (a lab server): delivered.
    relaxed = _settings(tmp_path, **smtp_overrides(server, "starttls", smtp_verify_tls=False))
    send(relaxed, _message(relaxed))
    assert len(server.messages) == 1


def test_starttls_required_but_not_offered_is_permanent(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server, "starttls"))
    with pytest.raises(MailDeliveryError, match="STARTTLS") as failure:
        send(settings, _message(settings))
    assert failure.value.permanent
    assert smtp_server.messages == []


def test_implicit_tls_delivery(
    tmp_path: Path, make_smtp_server: SmtpServerFactory, smtp_certificate: Certificate
) -> None:
    server = make_smtp_server(security="tls", users={"opsdeck": PASSWORD})
    settings = _settings(
        tmp_path,
        **smtp_overrides(
            server,
            "tls",
            smtp_ca_file=smtp_certificate.cert_file,
            smtp_username="opsdeck",
            smtp_password=PASSWORD,
        ),
    )

    send(settings, _message(settings))

    assert server.logins == ["opsdeck"]
    assert len(server.messages) == 1


def test_smtp_down_is_transient(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server))
    smtp_server.stop()
    with pytest.raises(MailDeliveryError, match="cannot reach") as failure:
        send(settings, _message(settings))
    assert failure.value.transient
    assert failure.value.code is None


def test_a_server_that_never_answers_is_transient(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        settings = _settings(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=silent.getsockname()[1],
            smtp_security="none",
            smtp_timeout_seconds=0.5,
        )
        with pytest.raises(MailDeliveryError) as failure:
            send(settings, _message(settings))
    assert failure.value.transient
    assert "timed out" in failure.value.message


def test_a_missing_ca_file_is_permanent(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = _settings(
        tmp_path,
        **smtp_overrides(smtp_server, "starttls", smtp_ca_file=tmp_path / "missing.pem"),
    )
    with pytest.raises(MailDeliveryError, match="OPSDECK_SMTP_CA_FILE") as failure:
        send(settings, _message(settings))
    assert failure.value.permanent


def test_a_refused_recipient_is_permanent_and_4xx_transient(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server))
    smtp_server.refuse[TO] = "550 5.1.1 No such user"
    with pytest.raises(MailDeliveryError, match="No such user") as refused:
        send(settings, _message(settings))
    assert refused.value.permanent
    assert refused.value.code == 550

    smtp_server.refuse[TO] = "450 4.2.1 Mailbox busy, try later"
    with pytest.raises(MailDeliveryError) as busy:
        send(settings, _message(settings))
    assert busy.value.transient
    assert busy.value.code == 450
    assert smtp_server.messages == []

    # One recipient refused among several: the others get it.
    smtp_server.refuse[TO] = "550 5.1.1 No such user"
    send(settings, _message(settings, to=[TO, "bo@example.com"]))
    [got] = smtp_server.received
    assert got.rcpt_tos == ["bo@example.com"]


def test_bcc_recipients_get_it_unseen(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = _settings(tmp_path, **smtp_overrides(smtp_server))
    message = _message(settings)
    message["Bcc"] = "boss@example.com"
    send(settings, message)
    [got] = smtp_server.received
    assert sorted(got.rcpt_tos) == ["ana@example.com", "boss@example.com"]
    assert got.message["Bcc"] is None


# -- signed tokens ------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    token = sign_token(SECRET, "unsubscribe", {"user": "u1", "kind": "incident.status"})
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL as it is
    assert read_token(SECRET, "unsubscribe", token) == {"user": "u1", "kind": "incident.status"}


def test_a_tampered_token_is_refused() -> None:
    token = sign_token(SECRET, "unsubscribe", {"user": "u1"})
    body, signature = token.split(".")
    forged_body = sign_token(SECRET, "unsubscribe", {"user": "admin"}).split(".")[0]
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (
        f"{forged_body}.{signature}",
        f"{body}.{flipped}",
        f"{body}.",
        body,
        "",
        "..",
        "a.b.c",
        f"{body}!.{signature}",
        "x" * 5000,
    ):
        with pytest.raises(TokenError):
            read_token(SECRET, "unsubscribe", bad)
    with pytest.raises(TokenError, match="signature"):
        read_token(b"another secret key", "unsubscribe", token)


def test_a_token_for_another_purpose_is_refused() -> None:
    token = sign_token(SECRET, "unsubscribe", {"user": "u1"})
    with pytest.raises(TokenError) as failure:
        read_token(SECRET, "password-reset", token)
    assert failure.value.reason == "signature"


def test_tokens_expire() -> None:
    now = time.time()
    token = sign_token(SECRET, "invite", {"user": "u1"}, max_age=60, now=now)
    assert read_token(SECRET, "invite", token, now=now + 59) == {"user": "u1"}
    with pytest.raises(TokenError) as expired:
        read_token(SECRET, "invite", token, now=now + 60)
    assert expired.value.reason == "expired"

    # A limit set by the reader applies to tokens that carry none.
    lasting = sign_token(SECRET, "invite", {"user": "u1"}, now=now)
    assert read_token(SECRET, "invite", lasting, now=now + 10**6) == {"user": "u1"}
    assert read_token(SECRET, "invite", lasting, max_age=3600, now=now + 3599)
    with pytest.raises(TokenError, match="expired"):
        read_token(SECRET, "invite", lasting, max_age=3600, now=now + 3600)
