"""The memory release after a burst: when it acts, and that it acts once per burst."""

import gc

from keystile.server.memory import BURST_GC_FACTOR, BURST_PEAK, SETTLED_FRACTION, BurstRelease, _malloc_trim


class CountingTrim:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return 1


def test_no_release_without_a_burst() -> None:
    trim = CountingTrim()
    release = BurstRelease(trim)
    release.peak = BURST_PEAK - 1
    assert not release.check(0)
    assert trim.calls == 0


def test_release_once_the_burst_has_drained_and_only_once() -> None:
    trim = CountingTrim()
    release = BurstRelease(trim)
    release.peak = 5000
    assert not release.check(5000 // SETTLED_FRACTION)  # still an eighth in flight: not over yet
    assert trim.calls == 0
    assert release.check(10)
    assert trim.calls == 1 and release.peak == 10
    assert not release.check(0)  # the same burst does not trigger again
    assert trim.calls == 1
    release.peak = 400  # a new burst
    assert release.check(0)
    assert trim.calls == 2 and release.releases == 2


def test_glibc_trim_is_found_and_callable() -> None:
    trim = _malloc_trim()
    assert trim is not None  # the CI machine runs glibc (Debian)
    assert trim() in (0, 1)


def test_collector_eased_during_a_burst_and_restored_after() -> None:
    before = gc.get_threshold()
    release = BurstRelease(CountingTrim())
    try:
        release.raise_peak(BURST_PEAK - 1)
        assert gc.get_threshold() == before  # no burst yet
        release.raise_peak(BURST_PEAK)
        assert gc.get_threshold() == (before[0] * BURST_GC_FACTOR, *before[1:])
        release.raise_peak(BURST_PEAK * 4)  # a higher peak in the same burst raises nothing further
        assert gc.get_threshold() == (before[0] * BURST_GC_FACTOR, *before[1:])
        assert release.check(0)
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
