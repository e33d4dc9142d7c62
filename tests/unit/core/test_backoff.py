"""The one backoff that mail, webhooks and DNS retries share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transferbot.core.backoff import backoff


def test_the_wait_doubles_from_the_first_and_stops_at_the_cap() -> None:
    assert [backoff(n, 30, 3600) for n in (1, 2, 3, 4, 8, 20, 10**9)] == [30, 60, 120, 240, 3600, 3600, 3600]


def test_jitter_adds_at_most_its_share() -> None:
    assert backoff(1, 5, 60, jitter=0.1, rand=lambda: 0.999) == pytest.approx(5.4995)
    assert backoff(1, 5, 60, jitter=0.1, rand=lambda: 0.0) == 5


def test_no_attempt_yet_is_a_mistake_of_the_caller() -> None:
    with pytest.raises(ValueError):
        backoff(0, 5, 60)


@given(st.integers(1, 10**6), st.floats(0.001, 1e4), st.floats(0.001, 1e6), st.floats(1.0, 10.0),
       st.floats(0.0, 1.0), st.floats(0.0, 0.999))
def test_waits_never_shrink_and_never_pass_the_cap_and_its_jitter(attempts: int, first: float, cap: float,
                                                                   factor: float, jitter: float, r: float) -> None:
    wait = backoff(attempts, first, cap, factor=factor, jitter=jitter, rand=lambda: r)
    assert 0 < wait <= cap * (1 + jitter) + 1e-9
    assert backoff(attempts + 1, first, cap, factor=factor) >= backoff(attempts, first, cap, factor=factor)
