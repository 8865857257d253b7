"""Inline images: a message's `<img src="cid:...">` shown from that message's own files.

Pure tests of the rewrite (tickets.content / tickets.attachments.shown), then the agent's
ticket page and the download route through the real app.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.tickets.attachments import shown
from servicecycle.tickets.content import (
    content_id_key,
    fold_quoted,
    sanitise_html,
    show_inline_images,
)
from servicecycle.tickets.models import Attachment, Message
from tests.factories import Token, sign_in

Make = Callable[..., Awaitable[Any]]


def png(width: int = 3, height: int = 2) -> bytes:
    """A real PNG (red pixels) a browser decodes: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = png()


def _file(id: int, content_id: str | None, content_type: str = "image/png") -> Attachment:
    return Attachment(
        id=id,
        filename=f"f{id}.png",
        content_type=content_type,
        size=10,
        sha256="0" * 64,
        storage_key=f"k{id}",
        inline=content_id is not None,
        content_id=content_id,
    )


def _url(attachment: Attachment) -> str:
    return f"/api/v1/attachments/{attachment.id}"


def _sources(markup: str) -> list[str | None]:
    """Each <img>'s src in order (None where it has none)."""
    return [
        (m.group(2) if m.group(1) else None)
        for m in re.finditer(r'<img(?=[^>]*?( src="([^"]*)")?)[^>]*>', markup)
    ]


# -- the rewrite, pure -------------------------------------------------------------------------


def test_a_cid_image_points_at_the_file_with_that_content_id() -> None:
    body = sanitise_html('<p>Look:</p><img src="cid:logo@mail.example" alt="our logo">')
    html, used = show_inline_images(body, {"logo@mail.example": "/api/v1/attachments/7"})
    assert html == '<p>Look:</p><img src="/api/v1/attachments/7" alt="our logo">'
    assert used == {"logo@mail.example"}


def test_a_cid_with_no_matching_file_is_left_inert() -> None:
    body = sanitise_html('<img src="cid:gone@x" alt="diagram"><img src="cid:also-gone@x">')
    html, used = show_inline_images(body, {"other@x": "/api/v1/attachments/7"})
    # no src at all: the browser asks nothing of anyone; the alt text stays
    assert html == '<img alt="diagram"><img>'
    assert "cid:" not in html and used == frozenset()


def test_a_body_without_cid_images_is_returned_as_it_is() -> None:
    body = sanitise_html('<p>Hi <a href="https://example.com">there</a></p>')
    assert show_inline_images(body, {"x@y": "/u"}) == (body, frozenset())


def test_content_ids_match_without_case_brackets_spaces_or_percent_escapes() -> None:
    assert content_id_key("cid:Image001.PNG@01DA") == content_id_key("<image001.png@01da>")
    assert content_id_key("CID:a%20b@x") == content_id_key("ab@x")
    body = sanitise_html(
        '<img src="CID:Part1.ABC@Mail"><img src="cid:%3Cpart2@mail%3E"><img src="cid:part3@mail">'
    )
    html, used = show_inline_images(
        body,
        {"part1.abc@mail": "/files/1", "part2@mail": "/files/2", "<PART3@MAIL>": "/files/3"},
    )
    assert _sources(html) == ["/files/1", "/files/2", "/files/3"]
    assert used == {"part1.abc@mail", "part2@mail", "<PART3@MAIL>"}


def test_an_exact_content_id_wins_over_one_that_differs_in_case() -> None:
    body = sanitise_html('<img src="cid:A@x"><img src="cid:a@x">')
    html, _ = show_inline_images(body, {"a@x": "/files/lower", "A@x": "/files/upper"})
    assert _sources(html) == ["/files/upper", "/files/lower"]


def test_what_the_rewrite_writes_is_escaped_and_the_rest_stays_sanitised() -> None:
    # the stored body is sanitised already; the rewrite sanitises again whatever it is given
    body = (
        '<img src="cid:a&amp;b@x" alt="&quot;><script>alert(1)</script>">'
        '<img src="cid:q@x" onerror="alert(2)"><script>alert(3)</script>'
    )
    html, used = show_inline_images(body, {"a&b@x": '/files/1?x="><script>', "q@x": "/files/2"})
    assert "<script" not in html and "onerror" not in html
    assert 'src="/files/1?x=&quot;&gt;&lt;script&gt;"' in html
    assert 'alt="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert used == {"a&b@x", "q@x"}


def test_links_to_a_cid_are_not_turned_into_images_or_downloads() -> None:
    body = sanitise_html('<a href="cid:logo@x">logo</a>')
    html, used = show_inline_images(body, {"logo@x": "/files/1"})
    assert 'href="cid:logo@x"' in html and used == frozenset()


def test_only_the_messages_own_image_files_are_used() -> None:
    mine = [_file(1, "chart@a"), _file(2, None), _file(3, "doc@a", "application/pdf")]
    body = sanitise_html(
        '<img src="cid:chart@a"><img src="cid:theirs@b"><img src="cid:doc@a">'
        '<img src="cid:vector@a">'
    )
    # "theirs@b" is the Content-ID of another message's file: it was not given, so it is inert
    result = shown(body, [*mine, _file(4, "vector@a", "image/svg+xml")], _url)
    assert _sources(result.html) == ["/api/v1/attachments/1", None, None, None]
    assert result.in_place == {1}


def test_two_parts_with_one_content_id_show_the_first() -> None:
    result = shown(sanitise_html('<img src="cid:x@a">'), [_file(5, "x@a"), _file(6, "x@a")], _url)
    assert _sources(result.html) == ["/api/v1/attachments/5"] and result.in_place == {5}


def test_a_rewritten_image_survives_the_folding_of_quoted_history() -> None:
    body = sanitise_html(
        '<p>See the chart</p><img src="cid:c@a">'
        "<p>On Tue, 1 Dec 2026 at 10:00, Ana wrote:</p>"
        '<blockquote><img src="cid:old@a"></blockquote>'
    )
    new, quoted = fold_quoted(shown(body, [_file(1, "c@a")], _url).html)
    assert _sources(new) == ["/api/v1/attachments/1"] and _sources(quoted) == [None]


# -- the ticket page and the download route --------------------------------------------------


def related_mail(
    sender: str,
    message_id: str,
    html: str,
    images: dict[str, bytes],
    *,
    subject: str = "Screenshot of the error",
    answers: str | None = None,
) -> bytes:
    """A mail as mail programs send pictures in the text: multipart/related, HTML first,
    then each image with its Content-ID (given here without its <>)."""
    message = EmailMessage()
    message["From"], message["To"] = sender, "help@desk.example"
    message["Subject"], message["Message-ID"] = subject, message_id
    if answers:
        message["In-Reply-To"] = answers
    message.set_content("See the screenshot.")
    message.add_alternative(html, subtype="html")
    body = message.get_payload()[1]  # type: ignore[index]
    for content_id, data in images.items():
        maintype, subtype = ("image", "svg+xml") if data.startswith(b"<svg") else ("image", "png")
        body.add_related(data, maintype, subtype, cid=f"<{content_id}>")
    return message.as_bytes()


async def _deliver(client: AsyncClient, token: Token, raw: bytes) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/channels/email/inbound",
        headers={**token.headers, "content-type": "message/rfc822"},
        content=raw,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _files_of(db: AsyncSession, ticket_id: int) -> dict[str, Attachment]:
    rows = await db.scalars(
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(Message.ticket_id == ticket_id)
    )
    return {a.content_id or a.filename: a for a in rows}


async def test_the_ticket_page_shows_a_mails_inline_image_from_its_own_message(
    client: AsyncClient, db: AsyncSession, make_token: Make, make_user: Make
) -> None:
    robot = await make_token("agent")
    first = await _deliver(
        client,
        robot,
        related_mail(
            "ann@example.com",
            "<s1@example.com>",
            '<p>It breaks here:</p><img src="cid:Shot1@Example.COM" alt="screenshot">',
            {"shot1@example.com": PNG},
        ),
    )
    ticket_id = first["ticket_id"]
    # her second mail names the first mail's picture: another message's file, never shown
    second = await _deliver(
        client,
        robot,
        related_mail(
            "ann@example.com",
            "<s2@example.com>",
            '<p>Again</p><img src="cid:shot1@example.com" alt="again">',
            {},
            subject="Re: Screenshot of the error",
            answers="<s1@example.com>",
        ),
    )
    assert second == {"outcome": "reply", "ticket_id": ticket_id, "reason": None}
    shot = (await _files_of(db, ticket_id))["shot1@example.com"]
    assert (shot.inline, shot.content_type) == (True, "image/png")

    agent = await make_user("agent")
    await sign_in(client, agent.email)
    page = (await client.get(f"/tickets/{ticket_id}")).text
    assert f'<img src="/api/v1/attachments/{shot.id}" alt="screenshot">' in page
    assert '<img alt="again">' in page and "cid:" not in page
    assert page.count(f"/api/v1/attachments/{shot.id}") == 2  # the picture and its list entry
    assert "shown in the message" in page

    image = await client.get(f"/api/v1/attachments/{shot.id}")
    assert image.status_code == 200 and image.content == PNG
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in image.headers.get_list("content-security-policy")
    # the stored body is kept as it came
    stored = await db.scalar(select(Message.body_html).where(Message.id == shot.message_id))
    assert 'src="cid:Shot1@Example.COM"' in (stored or "")


async def test_an_svg_part_is_never_shown_in_place_and_downloads_sandboxed(
    client: AsyncClient, db: AsyncSession, make_token: Make, make_user: Make
) -> None:
    robot = await make_token("agent")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    result = await _deliver(
        client,
        robot,
        related_mail(
            "bob@example.com",
            "<v1@example.com>",
            '<p>Vector</p><img src="cid:vec@example.com" alt="vector">',
            {"vec@example.com": svg},
        ),
    )
    drawing = (await _files_of(db, result["ticket_id"]))["vec@example.com"]
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    page = (await client.get(f"/tickets/{result['ticket_id']}")).text
    assert '<img alt="vector">' in page and "shown in the message" not in page
    download = await client.get(f"/api/v1/attachments/{drawing.id}")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in download.headers.get_list("content-security-policy")
