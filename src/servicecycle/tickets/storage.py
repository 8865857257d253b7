"""Where attachment bytes live, behind one interface: the database or a folder (S3 later)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.kit.errors import NotFound
from servicecycle.tickets.models import AttachmentBlob


class Storage(Protocol):
    async def put(self, session: AsyncSession, key: str, data: bytes) -> None: ...
    async def get(self, session: AsyncSession, key: str) -> bytes: ...
    async def delete(self, session: AsyncSession, key: str) -> None: ...


class DatabaseStorage:
    """Bytes in PostgreSQL: written in the same transaction as the row that names them."""

    async def put(self, session: AsyncSession, key: str, data: bytes) -> None:
        session.add(AttachmentBlob(key=key, data=data))
        await session.flush()

    async def get(self, session: AsyncSession, key: str) -> bytes:
        blob = await session.get(AttachmentBlob, key)
        if blob is None:
            raise NotFound("The file's contents are missing")
        return blob.data

    async def delete(self, session: AsyncSession, key: str) -> None:
        await session.execute(delete(AttachmentBlob).where(AttachmentBlob.key == key))


class FolderStorage:
    """Bytes in files under a folder, written before the row is committed (an orphan file
    after a failed commit is harmless; a row without its file would not be)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise NotFound("No such file")
        return self.root / key[:2] / key

    async def put(self, session: AsyncSession, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        os.replace(partial, path)

    async def get(self, session: AsyncSession, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound("The file's contents are missing") from exc

    async def delete(self, session: AsyncSession, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def storage_for(kind: str, data_dir: Path) -> Storage:
    return FolderStorage(data_dir / "attachments") if kind == "folder" else DatabaseStorage()
