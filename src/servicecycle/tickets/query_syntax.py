"""The search box's small query language. Pure.

``status:open assignee:me tag:refund priority:high channel:email "exact phrase" words``
Field filters narrow the results; everything else is full text (quoted phrases and
``-word`` exclusions work as in a web search engine).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

FIELDS = ("status", "assignee", "tag", "priority", "channel", "team", "requester", "type")
_TOKEN = re.compile(r'(\w+:"[^"]*"|-?"[^"]*"|\S+)')


_NEGATED = re.compile(r'(?:^|\s)-("[^"]*"|[^\s"]+)')


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def wanted(self) -> str:
        """The text without its ``-word`` exclusions."""
        return " ".join(_NEGATED.sub(" ", self.text).split())

    @property
    def excluded(self) -> list[str]:
        """The excluded words and phrases (without their minus)."""
        return _NEGATED.findall(self.text)


def parse(raw: str) -> SearchQuery:
    """Split ``raw`` into field filters and free text; ``key:"two words"`` keeps its quotes."""
    filters: dict[str, list[str]] = {}
    words: list[str] = []
    unknown: list[str] = []
    for token in _TOKEN.findall(raw or ""):
        key, sep, value = token.partition(":")
        if sep and key.lower() in FIELDS and value:
            value = _unquote(value)
            filters.setdefault(key.lower(), []).extend(v for v in value.split(",") if v)
        elif sep and key.isidentifier() and value and not key.startswith("-"):
            unknown.append(key)
            words.append(token)
        else:
            words.append(token)
    return SearchQuery(text=" ".join(words).strip(), filters=filters, unknown=unknown)


def _unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        try:
            return shlex.split(value)[0]
        except ValueError:
            return value.strip('"')
    return value
