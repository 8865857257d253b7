"""Survey scores as pure functions over plain numbers (no database, no web).

* CSAT (1-5): the share of satisfied answers (4 or 5), in per cent.
* NPS (0-10): per cent promoters (9-10) minus per cent detractors (0-6), from -100 to 100,
  with its standard error and a 95% confidence interval. Each answer counts +1 (promoter),
  0 (passive) or -1 (detractor); NPS is 100 times the mean of those, so its variance per
  answer is ``p_p + p_d - (p_p - p_d)**2`` (= ``p_p(1-p_p) + p_d(1-p_d) + 2 p_p p_d``) and
  ``SE = 100 * sqrt(variance / n)``. The interval is ``NPS ± 1.96 SE``, clipped to
  [-100, 100] (the normal approximation; wide for small n).
* CES (1-7, "the company made it easy to handle my issue"): the mean, and the share of
  "easy" answers (5-7), in per cent.
* Response rate: answered / sent, in per cent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

Z95 = 1.96

SCALES: dict[str, tuple[int, int]] = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}


@dataclass(frozen=True)
class Csat:
    n: int
    satisfied: int
    score: float | None  # per cent of 4-5; None without answers


@dataclass(frozen=True)
class Nps:
    n: int
    promoters: int
    passives: int
    detractors: int
    score: float | None  # -100..100; None without answers
    se: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Ces:
    n: int
    easy: int
    mean: float | None
    pct_easy: float | None


def csat(scores: Sequence[int]) -> Csat:
    """CSAT per cent: the share of answers of 4 or 5 (on 1-5)."""
    n = len(scores)
    satisfied = sum(1 for s in scores if s >= 4)
    return Csat(n=n, satisfied=satisfied, score=100.0 * satisfied / n if n else None)


def nps(scores: Sequence[int]) -> Nps:
    """NPS with its standard error and 95% interval (see the module's docstring)."""
    n = len(scores)
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    passives = n - promoters - detractors
    if n == 0:
        return Nps(0, 0, 0, 0, None, None, None, None)
    p_p, p_d = promoters / n, detractors / n
    score = 100.0 * (p_p - p_d)
    variance = max(p_p + p_d - (p_p - p_d) ** 2, 0.0)
    se = 100.0 * math.sqrt(variance / n)
    return Nps(
        n=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        score=score,
        se=se,
        ci_low=max(-100.0, score - Z95 * se),
        ci_high=min(100.0, score + Z95 * se),
    )


def ces(scores: Sequence[int]) -> Ces:
    """CES: the mean (1-7) and the per cent of easy answers (5-7)."""
    n = len(scores)
    easy = sum(1 for s in scores if s >= 5)
    if n == 0:
        return Ces(0, 0, None, None)
    return Ces(n=n, easy=easy, mean=sum(scores) / n, pct_easy=100.0 * easy / n)


def response_rate(answered: int, sent: int) -> float | None:
    """Per cent of sent surveys that were answered; None when none was sent."""
    return 100.0 * answered / sent if sent else None


def is_detractor(kind: str, score: int) -> bool:
    """An unhappy answer that deserves a recovery call: NPS 0-6, CSAT 1-2."""
    return (kind == "nps" and score <= 6) or (kind == "csat" and score <= 2)


T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def grouped(
    items: Iterable[T],
    key: Callable[[T], K],
    value: Callable[[T], int],
    score: Callable[[Sequence[int]], R],
) -> dict[K, R]:
    """Apply ``score`` to the values of ``items`` in each group of ``key``, in first-seen order."""
    groups: dict[K, list[int]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(value(item))
    return {k: score(v) for k, v in groups.items()}
