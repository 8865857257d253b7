"""The score functions against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from servicecycle.surveys import scores


def test_nps_with_its_standard_error_and_interval() -> None:
    # 10 answers: promoters 10,10,9,9,10 (5); passives 8,7 (2); detractors 6,5,0 (3)
    result = scores.nps([10, 10, 9, 9, 8, 7, 6, 5, 0, 10])
    assert (result.n, result.promoters, result.passives, result.detractors) == (10, 5, 2, 3)
    # p_p = 0.5, p_d = 0.3 -> NPS = 100 * (0.5 - 0.3) = 20
    assert result.score == pytest.approx(20.0)
    # variance = p_p + p_d - (p_p - p_d)^2 = 0.8 - 0.04 = 0.76
    #          = p_p(1-p_p) + p_d(1-p_d) + 2 p_p p_d = 0.25 + 0.21 + 0.30 = 0.76
    # SE = 100 * sqrt(0.76 / 10) = 100 * sqrt(0.076) = 27.5681
    assert result.se == pytest.approx(27.5681, abs=1e-4)
    # 95%: 20 -/+ 1.96 * 27.5681 = 20 -/+ 54.0335
    assert result.ci_low == pytest.approx(-34.0335, abs=1e-4)
    assert result.ci_high == pytest.approx(74.0335, abs=1e-4)


def test_the_nps_interval_is_clipped_to_plus_minus_100() -> None:
    # 3 promoters, 1 detractor: NPS = 75 - 25 = 50; variance = 1 - 0.25 = 0.75
    # SE = 100 * sqrt(0.75 / 4) = 43.3013; 50 + 1.96 * 43.3013 = 134.87 -> 100
    result = scores.nps([10, 10, 10, 0])
    assert result.score == pytest.approx(50.0)
    assert result.se == pytest.approx(100 * math.sqrt(0.75 / 4))
    assert result.ci_low == pytest.approx(50 - 1.96 * 43.30127, abs=1e-4)
    assert result.ci_high == 100.0


def test_nps_edge_cases() -> None:
    none = scores.nps([])
    assert none.n == 0 and none.score is None and none.se is None and none.ci_low is None
    # all promoters: NPS 100, no spread (variance 1 + 0 - 1 = 0), interval [100, 100]
    top = scores.nps([9, 10, 10])
    assert (top.score, top.se, top.ci_low, top.ci_high) == (100.0, 0.0, 100.0, 100.0)
    # all detractors: -100, and the interval stays within -100
    bottom = scores.nps([0, 6])
    assert (bottom.score, bottom.se, bottom.ci_low, bottom.ci_high) == (-100.0, 0.0, -100.0, -100.0)
    # one passive: NPS 0, variance 0
    assert scores.nps([7]).score == 0.0 and scores.nps([8]).se == 0.0


def test_csat_is_the_share_of_fours_and_fives() -> None:
    # 5, 4, 5 satisfied of 6 -> 3 / 6 = 50 %
    result = scores.csat([5, 4, 3, 2, 1, 5])
    assert (result.n, result.satisfied, result.score) == (6, 3, 50.0)
    assert scores.csat([]).score is None
    assert scores.csat([4]).score == 100.0


def test_ces_mean_and_share_of_easy() -> None:
    # (7 + 6 + 5 + 4 + 1) / 5 = 23 / 5 = 4.6; easy (5-7): 3 of 5 = 60 %
    result = scores.ces([7, 6, 5, 4, 1])
    assert (result.n, result.easy) == (5, 3)
    assert result.mean == pytest.approx(4.6)
    assert result.pct_easy == pytest.approx(60.0)
    empty = scores.ces([])
    assert empty.mean is None and empty.pct_easy is None


def test_response_rate() -> None:
    assert scores.response_rate(3, 12) == 25.0  # 3 / 12
    assert scores.response_rate(0, 0) is None
    assert scores.response_rate(0, 5) == 0.0


def test_detractors() -> None:
    assert scores.is_detractor("nps", 6) and not scores.is_detractor("nps", 7)
    assert scores.is_detractor("csat", 2) and not scores.is_detractor("csat", 3)
    assert not scores.is_detractor("ces", 1)


def test_grouped_by_any_key() -> None:
    answers = [("red", 10), ("blue", 0), ("red", 9), ("red", 3), ("blue", 10)]
    by_team = scores.grouped(answers, lambda a: a[0], lambda a: a[1], scores.nps)
    assert list(by_team) == ["red", "blue"]
    # red: 2 promoters, 1 detractor of 3 -> 100 * (2 - 1) / 3 = 33.33
    assert by_team["red"].score == pytest.approx(100 / 3)
    # blue: 1 promoter, 1 detractor -> 0; variance 1 - 0 = 1; SE = 100 * sqrt(1/2) = 70.71
    assert by_team["blue"].score == 0.0
    assert by_team["blue"].se == pytest.approx(70.7107, abs=1e-4)
    assert scores.grouped([], lambda a: a, lambda a: a, scores.csat) == {}
