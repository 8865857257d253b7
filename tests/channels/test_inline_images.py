"""Pictures in the text of a mail (multipart/related with Content-IDs) arrive as files of
their message that keep their Content-ID, so the message's HTML can show them in place."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.email.parse import parse
from servicecycle.tickets.models import Attachment, Message
from tests.channels.test_email_intake import deliver
from tests.factories import Token
from tests.tickets.test_inline_images import png

MakeToken = Callable[..., Awaitable[Token]]
PNG = png(4, 4)
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


# As Outlook writes it: the HTML names image001.png@01DB...; the part carries <> around it.
# The second picture's Content-ID comes folded over two lines and without <> (seen from
# some web mailers); the third part is an ordinary attachment (with a Content-ID, as some
# mail programs give every part).
RAW = f"""\
From: Ana Lima <ana@example.com>
To: help@desk.example
Subject: Error on checkout
Message-ID: <related-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/related; boundary="related"; type="text/html"

--related
Content-Type: text/html; charset="utf-8"

<p>The page shows this:</p><img src="cid:image001.png@01DB1234.56789AB0" alt="error">
<p>and then this:</p><img src="cid:spinner.gif@web.example">

--related
Content-Type: image/png; name="image001.png"
Content-Transfer-Encoding: base64
Content-ID: <image001.png@01DB1234.56789AB0>
Content-Disposition: inline; filename="image001.png"

{_b64(PNG)}
--related
Content-Type: image/gif
Content-Transfer-Encoding: base64
Content-ID:
 spinner.gif@web.example

{_b64(GIF)}
--related--

--mixed
Content-Type: text/plain; name="order.txt"
Content-Disposition: attachment; filename="order.txt"
Content-ID: <order-part@web.example>

Order 5521
--mixed--
""".replace("\n", "\r\n").encode()


def test_parsing_keeps_each_parts_content_id_without_brackets_or_folding() -> None:
    mail = parse(RAW)
    assert [(a.filename, a.content_id, a.inline) for a in mail.attachments] == [
        ("image001.png", "image001.png@01DB1234.56789AB0", True),
        ("part-2.gif", "spinner.gif@web.example", True),
        ("order.txt", "order-part@web.example", False),
    ]
    assert 'src="cid:image001.png@01DB1234.56789AB0"' in (mail.html or "")


async def test_a_related_mail_stores_its_pictures_with_their_content_ids(
    client: AsyncClient, db: AsyncSession, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    result = await deliver(client, agent, RAW)
    assert result["outcome"] == "ticket"
    rows = (
        await db.execute(
            select(Attachment, Message.body_html)
            .join(Message, Message.id == Attachment.message_id)
            .where(Message.ticket_id == result["ticket_id"])
            .order_by(Attachment.id)
        )
    ).all()
    assert [(a.filename, a.content_type, a.content_id, a.inline) for a, _ in rows] == [
        ("image001.png", "image/png", "image001.png@01DB1234.56789AB0", True),
        ("part-2.gif", "image/gif", "spinner.gif@web.example", True),
        ("order.txt", "text/plain", "order-part@web.example", False),
    ]
    # the body is stored as it came: the rewrite happens when it is shown
    assert 'src="cid:spinner.gif@web.example"' in rows[0][1]
    thread = (
        await client.get(f"/api/v1/tickets/{result['ticket_id']}/messages", headers=agent.headers)
    ).json()
    # the API keeps cid: addresses in body_html and says which file each one names
    assert [(a["filename"], a["content_id"], a["inline"]) for a in thread[0]["attachments"]] == [
        ("image001.png", "image001.png@01DB1234.56789AB0", True),
        ("part-2.gif", "spinner.gif@web.example", True),
        ("order.txt", "order-part@web.example", False),
    ]


async def test_a_content_id_too_long_to_keep_is_dropped_not_the_picture(
    client: AsyncClient, db: AsyncSession, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    long_id = "x" * 300 + "@example.com"
    raw = RAW.replace(b"image001.png@01DB1234.56789AB0", long_id.encode()).replace(
        b"<related-1@", b"<related-2@"
    )
    result = await deliver(client, agent, raw)
    picture = await db.scalar(
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(Message.ticket_id == result["ticket_id"], Attachment.filename == "image001.png")
    )
    assert picture is not None and picture.content_id is None and picture.inline
