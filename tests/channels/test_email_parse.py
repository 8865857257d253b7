"""A corpus of ordinary and hostile mails: each parses to something usable, or a clear refusal."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from servicecycle.channels.email.parse import Unreadable, parse


def mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    return message


def test_a_plain_reply_with_threading_headers_and_a_ticket_token() -> None:
    message = mail(
        From='"Dana Fox" <Dana@Example.com>',
        To="help+t1042@desk.example",
        Subject="Re: [#1042] Parcel missing",
        Message_ID="<abc@mail.example>",
        In_Reply_To="<out-1042-7@desk.example>",
        References="<out-1042-1@desk.example> <out-1042-7@desk.example>",
    )
    message.set_content("Still nothing.\n\n> On Monday you wrote:\n> it ships today")
    parsed = parse(message.as_bytes())
    assert (parsed.sender, parsed.sender_name) == ("dana@example.com", "Dana Fox")
    assert parsed.message_id == "<abc@mail.example>"
    assert parsed.thread_ids == ("<out-1042-7@desk.example>", "<out-1042-1@desk.example>")
    assert parsed.ticket_hint() == 1042 and parsed.automatic is None
    assert parsed.text.startswith("Still nothing.")


def test_html_is_sanitised_and_alternative_parts_read_once() -> None:
    message = mail(From="a@example.com", To="help@desk.example", Subject="Hi")
    message.set_content("Plain version")
    message.add_alternative(
        '<p onclick="x()">Hello <script>alert(1)</script><b>there</b></p>', subtype="html"
    )
    parsed = parse(message.as_bytes())
    assert parsed.html is not None and "<script" not in parsed.html and "onclick" not in parsed.html
    assert parsed.text == "Hello there"


def test_attachments_and_inline_images() -> None:
    message = mail(From="a@example.com", To="help@desk.example", Subject="Photo")
    message.set_content("See attached")
    message.add_attachment(
        b"\x89PNG\r\n\x1a\nxxxx", maintype="image", subtype="png", filename="shot.png"
    )
    message.add_attachment(
        b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    parsed = parse(message.as_bytes())
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("shot.png", "image/png"),
        ("invoice.pdf", "application/pdf"),
    ]
    assert parsed.attachments[0].data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"X_Autoreply": "yes"}, "X-Autoreply header"),
        ({"Subject": "Out of office: back Monday"}, "auto-reply subject"),
    ],
)
def test_automatic_mail_is_recognised(headers: dict[str, str], reason: str) -> None:
    base = {"From": "a@example.com", "To": "help@desk.example", "Subject": "Hello"} | headers
    message = mail(**base)
    message.set_content("I am away")
    assert parse(message.as_bytes()).automatic == reason


def test_bounces_are_recognised() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: help@desk.example\r\nSubject: Undelivered\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver\r\n--b--\r\n"
    )
    assert parse(raw).automatic == "delivery report (bounce)"


HOSTILE = {
    "no charset, 8-bit body": (
        b"From: x@example.com\r\nSubject: caf\xe9\r\n\r\nna\xefve body \xe9\r\n"
    ),
    "wrong charset label": (
        b"From: x@example.com\r\nSubject: t\r\nContent-Type: text/plain; charset=klingon\r\n\r\n"
        b"hello \xc3\xa9\r\n"
    ),
    "8-bit headers": (
        b"From: J\xc3\xbcrgen <j@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nhallo\r\n"
    ),
    "broken boundary": (
        b"From: x@example.com\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\npart one\r\n--zz"
    ),
    "garbage base64": (
        b"From: x@example.com\r\nSubject: t\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!!not base64@@@\r\n"
    ),
    "deep nesting": (
        b"From: x@example.com\r\nSubject: deep\r\n"
        + b"".join(
            f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
            for i in range(60)
        )
        + b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    ),
    "many parts": (
        b"From: x@example.com\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
        + b"".join(b"--m\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(500))
        + b"--m--\r\n"
    ),
    "no subject, no message id": b"From: x@example.com\r\n\r\nbody only\r\n",
    "NUL characters": (
        b"From: =?utf-8?q?Ev=00e?= <x@example.com>\r\nSubject: =?utf-8?q?bad=00subject?=\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>hi\x00 there</p>\r\n"
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_mail_still_parses(name: str) -> None:
    parsed = parse(HOSTILE[name])
    assert parsed.sender.endswith("@example.com")
    assert parsed.subject
    assert isinstance(parsed.text, str)


def test_the_worst_cases_say_what_they_skipped() -> None:
    assert any("nesting" in p for p in parse(HOSTILE["deep nesting"]).problems)
    assert any("first 200 parts" in p for p in parse(HOSTILE["many parts"]).problems)
    assert parse(HOSTILE["no subject, no message id"]).subject == "(no subject)"
    latin = parse(HOSTILE["no charset, 8-bit body"])
    assert latin.text == "naïve body é" and any("read as cp1252" in p for p in latin.problems)


def test_nul_characters_are_removed_and_noted() -> None:
    parsed = parse(HOSTILE["NUL characters"])
    assert (parsed.subject, parsed.sender_name) == ("badsubject", "Eve")
    assert "\x00" not in (parsed.html or "") + parsed.text
    assert "hi there" in parsed.text
    assert any("NUL characters removed" in p for p in parsed.problems)


def test_mail_without_a_sender_is_refused_with_a_reason() -> None:
    with pytest.raises(Unreadable, match="no usable sender"):
        parse(b"Subject: who am I\r\n\r\nnobody\r\n")
    with pytest.raises(Unreadable):
        parse(b"From: not an address\r\n\r\nx\r\n")
