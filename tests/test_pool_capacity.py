"""The pool-capacity search: where it stops, and what it reports (the runs themselves: test_notebooks' 05)."""

from bench.cluster.pool_capacity import Try, search_limit, shares

LIMIT = 10**9


def tries_where(fitting: int):
    """A try that fits up to ``fitting`` pool processes and is OOM-killed above: the kernel's answer, as a rule."""
    def run_try(limit: int, concurrency: int) -> Try:
        fits = concurrency <= fitting
        return Try(limit, concurrency, "kernel memcg v1", succeeded=concurrency, oom_kills=0 if fits else 3)
    return run_try


def test_the_search_brackets_the_boundary_from_above_and_from_below():
    for guess in (4, 13, 14, 40):
        tries = search_limit(tries_where(13), LIMIT, guess, log=lambda _: None)
        assert max(t.concurrency for t in tries if t.fits) == 13
        assert min(t.concurrency for t in tries if not t.fits) == 14
        assert len({t.concurrency for t in tries}) == len(tries)  # no concurrency tried twice


def test_a_coarser_resolution_takes_fewer_tries_and_still_brackets():
    fine = search_limit(tries_where(13), LIMIT, 16, resolution=1, log=lambda _: None)
    coarse = search_limit(tries_where(13), LIMIT, 16, resolution=2, log=lambda _: None)
    assert len(coarse) < len(fine)
    fit, miss = max(t.concurrency for t in coarse if t.fits), min(t.concurrency for t in coarse if not t.fits)
    assert fit <= 13 < miss and miss - fit <= 2


def test_a_worker_that_cannot_run_one_job_stops_the_search():
    tries = search_limit(tries_where(0), LIMIT, 6, log=lambda _: None)
    assert min(t.concurrency for t in tries) == 1 and not any(t.fits for t in tries)


def test_a_killed_main_process_or_a_failed_job_is_not_a_fit():
    assert not Try(LIMIT, 4, "kernel memcg v1", succeeded=4, main_alive=False).fits
    assert not Try(LIMIT, 4, "kernel memcg v1", succeeded=3, failed=1).fits
    assert not Try(LIMIT, 4, "watchdog", succeeded=4, watchdog_kills=1).fits
    assert Try(LIMIT, 4, "kernel memcg v1", succeeded=4).fits


def test_a_limit_s_tries_give_the_main_process_and_a_pool_process_their_shares():
    mb = 10**6
    tries = [Try(LIMIT, 6, "kernel memcg v1", succeeded=6, idle_charged_bytes=140 * mb),
             Try(LIMIT, 8, "kernel memcg v1", succeeded=8, oom_kills=2, idle_charged_bytes=160 * mb)]
    main, busy = shares(512 * mb, tries)
    assert main == 80 * mb  # 140 MB idle at 6 less 6 idle pool processes of 10 MB
    assert busy == (512 - 80) * mb // 7  # the rest over the midpoint of 6 (fit) and 8 (did not)
    assert shares(LIMIT, tries[:1]) is None  # no boundary yet
