"""A customer sees the pictures in their own mail in place, loaded through the portal's own
file route; another customer's pictures are 404 to them, whichever request they name."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.tickets.models import Attachment, Message
from tests.channels.test_email_intake import deliver
from tests.factories import Token
from tests.portal.conftest import Sessions, sign_in
from tests.tickets.test_inline_images import png, related_mail

MakeToken = Callable[..., Awaitable[Token]]


async def _picture(db: AsyncSession, ticket_id: int) -> Attachment:
    found = await db.scalar(
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(Message.ticket_id == ticket_id, Attachment.content_id.is_not(None))
    )
    assert found is not None
    return found


async def test_a_customer_sees_their_inline_picture_and_never_anothers(
    client: AsyncClient, db: AsyncSession, sessions: Sessions, make_token: MakeToken
) -> None:
    robot = await make_token("agent")
    html = '<p>My screen:</p><img src="cid:screen@mail.example" alt="my screen">'
    mine = await deliver(
        client,
        robot,
        related_mail("ann@example.com", "<a1@example.com>", html, {"screen@mail.example": png()}),
    )
    theirs = await deliver(
        client,
        robot,
        related_mail(
            "bob@example.com", "<b1@example.com>", html, {"screen@mail.example": png(5, 5)}
        ),
    )
    my_picture = await _picture(db, mine["ticket_id"])
    their_picture = await _picture(db, theirs["ticket_id"])

    await sign_in(client, sessions, "ann@example.com")
    page = await client.get(f"/portal/requests/{mine['ticket_id']}")
    assert page.status_code == 200
    mine_url = f"/portal/requests/{mine['ticket_id']}/files/{my_picture.id}"
    # the same Content-ID in Bob's mail never leads Ann's page to Bob's file
    assert re.findall(r'<img src="([^"]*)"', page.text) == [mine_url]
    assert f"/files/{their_picture.id}" not in page.text
    assert "shown in the message" in page.text and "cid:" not in page.text

    image = await client.get(mine_url)
    assert image.status_code == 200 and image.content == png()
    assert image.headers["content-type"] == "image/png"
    assert "sandbox" in image.headers.get_list("content-security-policy")

    for url in (
        f"/portal/requests/{mine['ticket_id']}/files/{their_picture.id}",
        f"/portal/requests/{theirs['ticket_id']}/files/{their_picture.id}",
    ):
        refused = await client.get(url)
        assert refused.status_code == 404 and png(5, 5) != refused.content
        assert "image/png" not in refused.headers["content-type"]


async def test_an_svg_picture_is_not_shown_in_the_portal_and_downloads_sandboxed(
    client: AsyncClient, db: AsyncSession, sessions: Sessions, make_token: MakeToken
) -> None:
    robot = await make_token("agent")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
    mine = await deliver(
        client,
        robot,
        related_mail(
            "cleo@example.com",
            "<c1@example.com>",
            '<img src="cid:logo@mail.example" alt="logo">',
            {"logo@mail.example": svg},
        ),
    )
    drawing = await _picture(db, mine["ticket_id"])
    await sign_in(client, sessions, "cleo@example.com")
    page = await client.get(f"/portal/requests/{mine['ticket_id']}")
    assert '<img alt="logo">' in page.text and "shown in the message" not in page.text
    download = await client.get(f"/portal/requests/{mine['ticket_id']}/files/{drawing.id}")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in download.headers.get_list("content-security-policy")
    assert download.headers["x-content-type-options"] == "nosniff"
