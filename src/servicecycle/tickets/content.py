"""Message bodies: sanitised HTML to show, plain text to search. Pure functions."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote

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


def sanitise_html(
    raw: str, *, attribute_filter: Callable[[str, str, str], str | None] | None = None
) -> str:
    """Only harmless markup survives: no scripts, styles, event handlers or javascript: links.
    ``attribute_filter`` (element, attribute, value) may change or drop an attribute's value."""
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=attribute_filter,
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


# -- inline images (cid: references) -------------------------------------------------------

_CID = re.compile(r"cid:", re.IGNORECASE)


def content_id_key(value: str) -> str:
    """How a Content-ID and a ``cid:`` URL are compared: without the scheme, the angle
    brackets, white space and %-escapes (RFC 2392), and without case (mail programs differ;
    matching stays within one message, so a looser match can never reach another's file)."""
    if value[:4].lower() == "cid:":
        value = unquote(value[4:])
    return "".join(value.split()).strip("<>").casefold()


def show_inline_images(markup: str, sources: Mapping[str, str]) -> tuple[str, frozenset[str]]:
    """Sanitised HTML for display with each ``<img src="cid:X">`` pointing at ``sources[X]``
    (Content-ID to URL: the caller gives only the displayed message's own images), and the
    Content-IDs that were used. An image whose Content-ID is not there loses its ``src``: it
    stays inert (its alt text, if any) and asks nothing of anyone. ``cid:`` links other than
    images are left as they are (a browser cannot follow them). The stored body is not changed.
    """
    if not _CID.search(markup):
        return markup, frozenset()
    keys: dict[str, str] = {}
    for content_id in sources:  # an exact Content-ID first, then one that differs in case
        keys.setdefault(content_id, content_id)
    for content_id in sources:
        keys.setdefault(content_id_key(content_id), content_id)
    used: set[str] = set()

    def point(element: str, attribute: str, value: str) -> str | None:
        if element != "img" or attribute != "src" or not _CID.match(value):
            return value
        exact = unquote(value[4:]).strip().strip("<>")
        found = keys.get(exact) or keys.get(content_id_key(value))
        if found is None:
            return None
        used.add(found)
        return sources[found]

    # sanitised again with the rewrite: attribute values are escaped by the serialiser, and
    # nothing the stored body holds can change what else survives
    shown = sanitise_html(markup, attribute_filter=point)
    return shown, frozenset(used)
