"""Faults the channel tests plant in the database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def refuse_break_me(db: AsyncSession) -> None:
    """The database refuses to log a mail whose subject is 'Break me' (as a full disk would)."""
    await db.execute(
        text(
            """CREATE FUNCTION test_refuse_break_me() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.subject = 'Break me' THEN RAISE EXCEPTION 'disk full (test)'; END IF;
              RETURN NEW;
            END $$"""
        )
    )
    await db.execute(
        text(
            """CREATE TRIGGER refuse_break_me BEFORE INSERT ON inbound_mails
            FOR EACH ROW EXECUTE FUNCTION test_refuse_break_me()"""
        )
    )
