from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.kit.errors import UnsupportedType, ValidationFailed
from servicecycle.tickets.files import check_file, clean_filename
from servicecycle.tickets.models import Attachment, AttachmentBlob
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_file_names_and_types_are_checked() -> None:
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert clean_filename('in"voice<1>.pdf') == "in_voice_1_.pdf"
    with pytest.raises(ValidationFailed):
        clean_filename("...")
    assert check_file("photo.png", "image/png", PNG) == "image/png"
    assert check_file("notes.txt", None, b"hello") == "text/plain"
    for name, kind, head in (
        ("setup.exe", None, b"MZ"),
        ("x.png", "image/png", b"GIF89a"),
        ("invoice.pdf", "application/pdf", b"MZ\x90\x00"),
        ("a.js", None, b"x"),
    ):
        with pytest.raises(UnsupportedType):
            check_file(name, kind, head)


async def test_upload_attach_and_download(
    client: AsyncClient, make_token: MakeToken, make_ticket: Callable[..., Awaitable[Any]]
) -> None:
    agent = await make_token("agent")
    ticket = await make_ticket()
    uploaded = await client.post(
        "/api/v1/uploads",
        headers=agent.headers,
        files={"file": ("screen shot.png", PNG, "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    reply = await client.post(
        f"/api/v1/tickets/{ticket.id}/messages",
        headers=agent.headers,
        json={"kind": "reply", "body": "See the picture", "attachment_ids": [file_id]},
    )
    assert reply.status_code == 201, reply.text
    assert [a["filename"] for a in reply.json()["attachments"]] == ["screen shot.png"]
    download = await client.get(f"/api/v1/attachments/{file_id}", headers=agent.headers)
    assert download.status_code == 200 and download.content == PNG
    assert (
        download.headers["content-disposition"] == "attachment; filename*=UTF-8''screen%20shot.png"
    )
    assert download.headers.get_list("content-security-policy")[0] == "sandbox"
    again = await client.post(
        f"/api/v1/tickets/{ticket.id}/messages",
        headers=agent.headers,
        json={"kind": "note", "body": "twice?", "attachment_ids": [file_id]},
    )
    assert again.status_code == 422 and "attachment_ids" in again.json()["error"]["fields"]


async def test_someone_elses_upload_cannot_be_attached(
    client: AsyncClient, make_token: MakeToken, make_ticket: Callable[..., Awaitable[Any]]
) -> None:
    owner, other = await make_token("agent"), await make_token("agent")
    ticket = await make_ticket()
    file_id = (
        await client.post(
            "/api/v1/uploads",
            headers=owner.headers,
            files={"file": ("a.txt", b"hello", "text/plain")},
        )
    ).json()["id"]
    stolen = await client.post(
        f"/api/v1/tickets/{ticket.id}/messages",
        headers=other.headers,
        json={"kind": "note", "body": "mine now", "attachment_ids": [file_id]},
    )
    assert stolen.status_code == 422
    thread = (
        await client.get(f"/api/v1/tickets/{ticket.id}/messages", headers=other.headers)
    ).json()
    assert len(thread) == 1


async def test_oversized_and_disguised_files_are_refused_and_nothing_is_stored(
    client: AsyncClient, make_token: MakeToken, app: Any, db: AsyncSession
) -> None:
    agent = await make_token("agent")
    app.state.runtime.settings.max_attachment_bytes = 1000
    big = await client.post(
        "/api/v1/uploads",
        headers=agent.headers,
        files={"file": ("big.txt", b"x" * 1001, "text/plain")},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    fake = await client.post(
        "/api/v1/uploads",
        headers=agent.headers,
        files={"file": ("cat.png", b"MZ\x90\x00 not a png", "image/png")},
    )
    assert fake.status_code == 415
    exe = await client.post(
        "/api/v1/uploads",
        headers=agent.headers,
        files={"file": ("tool.exe", b"MZ", "application/octet-stream")},
    )
    assert exe.status_code == 415
    assert await db.scalar(select(func.count()).select_from(Attachment)) == 0
    assert await db.scalar(select(func.count()).select_from(AttachmentBlob)) == 0


async def test_folder_storage_and_stale_upload_cleanup(db: AsyncSession, tmp_path: Any) -> None:
    from datetime import timedelta

    from servicecycle.events.service import Actor
    from servicecycle.kit import clock
    from servicecycle.tickets import attachments
    from servicecycle.tickets.storage import storage_for

    storage = storage_for("folder", tmp_path)
    kept = await attachments.upload(
        db,
        storage,
        filename="a.txt",
        content_type="text/plain",
        data=b"hi",
        max_bytes=100,
        user_id=None,
        actor=Actor.system(),
    )
    assert await storage.get(db, kept.storage_key) == b"hi"
    assert (tmp_path / "attachments" / kept.storage_key[:2] / kept.storage_key).exists()
    removed = await attachments.remove_stale_uploads(
        db, storage, now=clock.now() + timedelta(days=2)
    )
    assert removed == 1
    assert not (tmp_path / "attachments" / kept.storage_key[:2] / kept.storage_key).exists()


async def test_an_unsent_upload_is_its_uploaders_alone(
    client: AsyncClient, make_token: MakeToken
) -> None:
    owner, other = await make_token("agent"), await make_token("agent")
    file_id = (
        await client.post(
            "/api/v1/uploads",
            headers=owner.headers,
            files={"file": ("draft.txt", b"secret draft", "text/plain")},
        )
    ).json()["id"]
    assert (
        await client.get(f"/api/v1/attachments/{file_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/attachments/{file_id}", headers=owner.headers)
    ).status_code == 200


async def test_analysts_read_tickets_but_do_not_change_them(
    client: AsyncClient, make_token: MakeToken, make_ticket: Callable[..., Awaitable[Any]]
) -> None:
    analyst = await make_token("analyst")
    ticket = await make_ticket()
    assert (
        await client.get(f"/api/v1/tickets/{ticket.id}", headers=analyst.headers)
    ).status_code == 200
    note = await client.post(
        f"/api/v1/tickets/{ticket.id}/messages",
        headers=analyst.headers,
        json={"kind": "note", "body": "hi"},
    )
    assert note.status_code == 403
