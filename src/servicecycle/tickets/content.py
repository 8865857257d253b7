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


# Where a reply's quoted history or signature begins, in sanitised HTML (earliest wins).
_QUOTE_STARTS = [
    re.compile(r"<blockquote\b", re.IGNORECASE),
    # "On Tue, 1 Dec 2026 at 10:00, Ana <ana@example.com> wrote:" and its common translations
    re.compile(
        r"(?:<(?:p|div)>|<br>|^)\s*(?:On|Le|Am|El|Il|Op)\s[^<]{4,300}?"
        r"(?:wrote|a écrit|schrieb|escribió|ha scritto|schreef)\s*:",
        re.IGNORECASE,
    ),
    re.compile(
        r"-{3,}\s*(?:Original Message|Forwarded message|Ursprüngliche Nachricht)\s*-{3,}",
        re.IGNORECASE,
    ),
    # Outlook's header block: From: ... Sent: ...
    re.compile(
        r"(?:<(?:p|div)>|<br>|^)\s*(?:<b>)?From:(?:</b>)?\s[^<]{1,200}(?:<br>\s*)"
        r"(?:<b>)?(?:Sent|Date):",
        re.IGNORECASE,
    ),
    # two or more lines quoted with ">" in a plain-text mail
    re.compile(r"(?:<p>|<br>|^)\s*&gt;[^<]*(?:<br>\s*&gt;)", re.IGNORECASE),
    # the signature delimiter "-- " on a line of its own
    re.compile(r"(?:<p>|<br>)--\s?(?:<br>|</p>)"),
]


def fold_quoted(markup: str) -> tuple[str, str]:
    """Split a message's sanitised HTML into what is new and the quoted history or signature
    after it ("" when there is none). The stored body is never changed: this is for display.

    Nothing is folded when the new part would be empty (a message that is all quote).
    Both parts are sanitised again, which closes any element the cut left open.
    """
    cut = min((m.start() for p in _QUOTE_STARTS if (m := p.search(markup))), default=None)
    if cut is None:
        return markup, ""
    head, tail = markup[:cut], markup[cut:]
    if not html_to_text(head).strip():
        return markup, ""
    return sanitise_html(head), sanitise_html(tail)
