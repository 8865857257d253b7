"""CPU cost of showing a message's inline (``cid:``) images, per displayed message.

The ticket page and the portal call ``tickets.attachments.shown`` for every message; a body
with no ``cid:`` returns at once, one with it is sanitised again with the rewrite. This
compares that with ``fold_quoted`` (which every message already goes through) on the same
bodies. Pure Python, no database; ``time.process_time`` so other load on the machine
matters less.

    .venv/bin/python bench/inline_images.py --rounds 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from servicecycle.tickets.attachments import shown
from servicecycle.tickets.content import fold_quoted, sanitise_html
from servicecycle.tickets.models import Attachment

PARAGRAPH = (
    "<p>Hello, the checkout page shows an error after I enter my card. "
    "I tried twice with two cards; order 5521 is still open.</p>"
)


def _body(paragraphs: int, images: int) -> str:
    pictures = "".join(
        f'<p><img src="cid:image{n:03}.png@01DB1234.56789AB0" alt="shot {n}"></p>'
        for n in range(images)
    )
    quoted = "<p>On Tue, 1 Dec 2026 at 10:00, Support wrote:</p><blockquote>" + PARAGRAPH * 3
    return sanitise_html(PARAGRAPH * paragraphs + pictures + quoted + "</blockquote>")


def _files(images: int) -> list[Attachment]:
    return [
        Attachment(
            id=n + 1,
            filename=f"image{n:03}.png",
            content_type="image/png",
            size=1000,
            sha256="0" * 64,
            storage_key=f"k{n}",
            inline=True,
            content_id=f"image{n:03}.png@01DB1234.56789AB0",
        )
        for n in range(images)
    ]


def _cpu_us(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        samples.append((time.process_time() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; median of 5 x {args.rounds} calls, CPU µs")
    print(f"{'body':<40}{'chars':>7}{'shown':>9}{'fold_quoted':>13}")
    for label, paragraphs, images in [
        ("short reply, no picture", 3, 0),
        ("short reply, 1 picture", 3, 1),
        ("long mail (40 paragraphs), 5 pictures", 40, 5),
    ]:
        body, files = _body(paragraphs, images), _files(images)

        def show(body: str = body, files: list[Attachment] = files) -> object:
            return shown(body, files, lambda a: f"/api/v1/attachments/{a.id}")

        def fold(body: str = body) -> object:
            return fold_quoted(body)

        print(
            f"{label:<40}{len(body):>7}{_cpu_us(show, args.rounds):>9.1f}"
            f"{_cpu_us(fold, args.rounds):>13.1f}"
        )


if __name__ == "__main__":
    main()
