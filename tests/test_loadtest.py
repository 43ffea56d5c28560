"""gunicorn with several workers under a bounded mix of users on loopback: zero errors, flat memory."""

from __future__ import annotations

from benchmarks.loadtest import run


def test_gunicorn_workers_hold_a_mix_of_users(demo_store):
    figures = run(demo_store, workers=2, users=4, seconds=12)
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["requests"] > 50
    assert figures["worker_rss_growth_after_warmup"] < 1.15
