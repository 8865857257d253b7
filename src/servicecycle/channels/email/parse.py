"""Raw mail to what a ticket needs. Pure: no database, no network.

Best effort on hostile input: malformed MIME, wrong or missing charsets, 8-bit headers and
deep nesting still give a sender (or a clear refusal), a subject, a body and the files;
nothing here raises on bad content except :class:`Unreadable` for mail with no sender.
"""

from __future__ import annotations

import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

from servicecycle.tickets.content import html_to_text, sanitise_html

MAX_PARTS = 200
MAX_DEPTH = 20
TICKET_TOKEN = re.compile(r"\[#(\d{1,12})\]")
REPLY_ADDRESS = re.compile(r"\+t(\d{1,12})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")
_BRACKETED = re.compile(r"<([^<>]*)>")
BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@")


class Unreadable(ValueError):
    """A mail that cannot become a ticket at all (no sender); the reason is the message."""


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    sender: str
    sender_name: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    attachments: tuple[ParsedAttachment, ...] = ()
    automatic: str | None = None  # why this mail must never be answered (auto-reply, bounce...)
    problems: tuple[str, ...] = field(default=())

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """The Message-IDs this mail answers, nearest first."""
        return tuple(dict.fromkeys((*self.in_reply_to, *reversed(self.references))))

    def ticket_hint(self) -> int | None:
        """A ticket number named in the subject ([#1234]) or the reply address (+t1234@)."""
        found = TICKET_TOKEN.search(self.subject)
        if found:
            return int(found.group(1))
        for recipient in self.recipients:
            match = REPLY_ADDRESS.search(recipient)
            if match:
                return int(match.group(1))
        return None


def _bytes_text(chunk: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8", "cp1252"):
        if candidate and candidate != "unknown-8bit":
            try:
                return chunk.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                continue
    return chunk.decode("latin-1")


def _words(value: Any, problems: list[str], name: str) -> str:
    """A header value with its encoded words (RFC 2047) and raw 8-bit bytes decoded."""
    try:
        parts = decode_header(value)
    except Exception as exc:  # broken encoded words: keep the text as it came
        problems.append(f"unreadable {name} header ({type(exc).__name__})")
        parts = [(str(value), None)]
    text = "".join(
        chunk if isinstance(chunk, str) else _bytes_text(chunk, charset) for chunk, charset in parts
    )
    if any("\udc80" <= c <= "\udcff" for c in text):  # 8-bit bytes kept as surrogates
        text = _bytes_text(text.encode("ascii", "surrogateescape"), None)
    return _without_nul(text, problems, f"the {name} header")


def _without_nul(text: str, problems: list[str], where: str) -> str:
    """The text without NUL characters, which no database text can hold (and no mail means)."""
    if "\x00" not in text:
        return text
    problems.append(f"NUL characters removed from {where}")
    return text.replace("\x00", "")


def _raw(message: Message, name: str) -> str:
    """A header as it came, encoded words left alone (addresses are parsed from this)."""
    value = message.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\x00", "")
    # the compat policy wraps a header with 8-bit bytes: those bytes, read as text
    return "".join(
        _bytes_text(c, None) if isinstance(c, bytes) else c for c, _ in decode_header(value)
    ).replace("\x00", "")


def _header(message: Message, name: str, problems: list[str]) -> str:
    value = message.get(name)
    return " ".join(_words(value, problems, name).split()) if value is not None else ""


def _address(message: Message, name: str, problems: list[str]) -> tuple[str, str]:
    """(display name, address) of an address header: split before the name is decoded, so an
    encoded comma in a name cannot split the address."""
    display, address = parseaddr(_raw(message, name))
    return " ".join(_words(display, problems, name).split()), address


def _ids(value: str) -> tuple[str, ...]:
    return tuple(_MESSAGE_ID.findall(value or ""))


def _decode(part: Message, problems: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8", "cp1252", "latin-1"):
        try:
            text = payload.decode(candidate)
            if candidate != charset:
                problems.append(f"body was not {charset}; read as {candidate}")
            return _without_nul(text, problems, "the body")
        except (LookupError, UnicodeDecodeError):
            continue
    return _without_nul(payload.decode("utf-8", errors="replace"), problems, "the body")


def _automatic(message: Message, sender: str, subject: str) -> str | None:
    auto = (_raw(message, "Auto-Submitted") or "no").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = _raw(message, "Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if message.get(header) is not None and header != "X-Auto-Response-Suppress":
            return f"{header} header"
    if (
        sender.lower().startswith(BOUNCE_SENDERS)
        or message.get_content_type() == "multipart/report"
    ):
        return "delivery report (bounce)"
    if _raw(message, "Return-Path").strip() == "<>":
        return "empty return path"
    if subject.lower().startswith(("auto:", "automatic reply", "out of office", "undeliverable:")):
        return "auto-reply subject"
    return None


def parse(raw: bytes) -> ParsedMail:
    """Parse one raw RFC 5322 message."""
    problems: list[str] = []
    message: Message
    # the compat policy: headers stay strings, decoded here only where they are read (the
    # modern policy parses every header it is asked for into objects: most of parse's time)
    message = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    name, sender = _address(message, "Reply-To", problems)
    if "@" not in sender:
        name, sender = _address(message, "From", problems)
    if "@" not in sender:  # no From at all: the envelope sender, if the last hop noted one
        _, envelope = parseaddr(_raw(message, "Return-Path"))
        if "@" in envelope:
            problems.append("no usable From address; the envelope sender (Return-Path) was used")
            name, sender = "", envelope
    if "@" not in sender or len(sender) > 320:
        raise Unreadable("the mail has no usable sender (From) address")
    sender = sender.strip().lower()
    recipients = tuple(
        addr.lower()
        for _, addr in getaddresses([_raw(message, h) for h in ("To", "Cc", "Delivered-To")])
        if "@" in addr
    )
    subject = _header(message, "Subject", problems)[:300] or "(no subject)"
    message_id = (_ids(_header(message, "Message-ID", problems)) or ("",))[0]
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[ParsedAttachment] = []
    _walk(message, 0, text_parts, html_parts, attachments, problems)
    html = sanitise_html("".join(html_parts)) if html_parts else None
    text = "\n\n".join(t.strip() for t in text_parts if t.strip())
    if not text and html:
        text = html_to_text(html)
    return ParsedMail(
        message_id=message_id,
        sender=sender,
        sender_name=_clean_name(name, sender),
        recipients=recipients,
        subject=subject,
        text=text,
        html=html,
        in_reply_to=_ids(_header(message, "In-Reply-To", problems)),
        references=_ids(_header(message, "References", problems)),
        attachments=tuple(attachments),
        automatic=_automatic(message, sender, subject),
        problems=tuple(problems),
    )


def _clean_name(name: str, address: str) -> str:
    name = " ".join(name.replace('"', "").split())[:200]
    return name or Address(addr_spec=address).username if "@" in address else name


def _walk(
    part: Message,
    depth: int,
    text: list[str],
    html: list[str],
    files: list[ParsedAttachment],
    problems: list[str],
) -> None:
    if depth > MAX_DEPTH:
        problems.append(f"nesting deeper than {MAX_DEPTH} parts was ignored")
        return
    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):
            return
        if len(children) > MAX_PARTS:
            problems.append(f"only the first {MAX_PARTS} parts were read")
        kind = part.get_content_type()
        for child in children[:MAX_PARTS]:
            if not isinstance(child, Message):
                continue
            # in multipart/alternative keep one body: plain text and HTML are the same words
            if (
                kind == "multipart/alternative"
                and child.get_content_type() == "text/plain"
                and any(
                    c.get_content_type() == "text/html" for c in children if isinstance(c, Message)
                )
            ):
                continue
            _walk(child, depth + 1, text, html, files, problems)
        return
    kind = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    filename = part.get_filename()
    if filename is not None:  # the compat policy leaves encoded words in names
        filename = " ".join(_words(filename, problems, "filename").split())
    if kind == "message/rfc822" and isinstance(part.get_payload(), list):
        for inner in part.get_payload():
            if isinstance(inner, Message):
                _walk(inner, depth + 1, text, html, files, problems)
        return
    if disposition != "attachment" and filename is None and kind in ("text/plain", "text/html"):
        (html if kind == "text/html" else text).append(_decode(part, problems))
        return
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        content_id = _content_id(_raw(part, "Content-ID"))
        # an inline image often has no name: give it one a download can open
        extension = mimetypes.guess_extension(kind) or ""
        files.append(
            ParsedAttachment(
                filename=filename or f"part-{len(files) + 1}{extension}",
                content_type=kind,
                data=payload,
                # some mail programs give every part a Content-ID: one sent as an
                # attachment stays one (the HTML may still show it; see tickets.content)
                inline=disposition == "inline"
                or (content_id is not None and disposition != "attachment"),
                content_id=content_id,
            )
        )


def _content_id(value: str) -> str | None:
    """A part's Content-ID as the desk keeps it: what is inside its <> (some mailers leave
    them out), without white space a folded header put in."""
    found = _BRACKETED.search(value)
    content_id = "".join((found.group(1) if found else value).split())
    return content_id or None
