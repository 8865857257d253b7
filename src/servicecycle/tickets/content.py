"""Message bodies: sanitised HTML to show, plain text to search. Pure functions."""

from __future__ import annotations

import html
import re

import nh3

ALLOWED_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "img",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"colspan"},
    "th": {"colspan"},
}
MAX_BODY_CHARS = 1_000_000

_BLOCK_END = re.compile(r"</(p|div|li|h[1-6]|tr|blockquote|pre)>|<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def sanitise_html(raw: str) -> str:
    """Only harmless markup survives: no scripts, styles, event handlers or javascript: links."""
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )


def html_to_text(markup: str) -> str:
    with_breaks = _BLOCK_END.sub("\n", markup)
    text = html.unescape(nh3.clean(with_breaks, tags=set()))
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )


def body(*, text: str | None = None, markup: str | None = None) -> tuple[str, str]:
    """(sanitised HTML, plain text) from either plain text or HTML."""
    if markup is not None:
        safe = sanitise_html(markup)
        return safe, html_to_text(safe)
    plain = (text or "").strip()
    return text_to_html(plain), plain
