"""The callbacks' context: the columnar reader takes over from SQL when ready, and the result cache
is shared through Redis between workers."""

from __future__ import annotations

import socket

import pytest

from callbacks.context import AppContext, ColumnarReader, SqlReader, make_cache
from data_sources.filters import Filters
from data_sources.store import mark_changed, open_store

GRID = ("row_id", "source", "record_id", "funder_name", "amount_usd", "year")


@pytest.fixture
def context(demo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDATLAS_CACHE_DIR", str(tmp_path / "copies"))
    engine = open_store(demo_store)
    yield AppContext(engine)
    engine.dispose()


def test_reader_is_sql_until_the_copy_is_ready_then_columnar(context):
    assert isinstance(context.reader(), SqlReader)  # answers at once while the copy is built
    assert context.wait_for_columnar(timeout=120)
    reader = context.reader()
    assert isinstance(reader, ColumnarReader)
    sql = SqlReader(context.engine)
    filters = Filters(themes=("WASH",), year_from=2018)
    assert reader.row_count(filters) == sql.row_count(filters)
    assert reader.headline(filters).records == sql.headline(filters).records
    for sort in ([], [("amount_usd", "desc")], [("funder_name", "asc")]):  # a text sort goes to SQL
        assert reader.table_page(filters, 100, 150, sort, GRID) == sql.table_page(filters, 100, 150, sort, GRID)


def test_a_change_in_the_store_is_seen_and_the_copy_rebuilt(context, monkeypatch):
    import callbacks.context as module

    monkeypatch.setattr(module, "VERSION_TTL_S", 0.0)
    assert context.wait_for_columnar(timeout=120)
    before = context.reader().table.version
    with context.engine.begin() as conn:
        mark_changed(conn)
    assert isinstance(context.reader(), SqlReader), "a stale copy is never used"
    assert context.wait_for_columnar(timeout=120)
    assert context.reader().table.version != before


def test_redis_cache_is_shared_between_workers(demo_store, redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDATLAS_CACHE_DIR", str(tmp_path / "copies"))
    engine = open_store(demo_store)
    prefix = f"test-{tmp_path.name}"
    first = AppContext(engine, use_columnar=False, cache=make_cache(redis_url=redis_url, prefix=prefix))
    second = AppContext(engine, use_columnar=False, cache=make_cache(redis_url=redis_url, prefix=prefix))
    filters = Filters(themes=("Health",))
    computed = first.cached("headline", lambda r, f: r.headline(f), filters)

    def must_not_run(_reader, _filters):
        raise AssertionError("the second worker should read the first one's result from Redis")

    assert second.cached("headline", must_not_run, filters) == computed
    with engine.begin() as conn:
        mark_changed(conn)
    second._version = None  # noqa: SLF001 - skip the one-second version cache in this test
    calls = []
    second.cached("headline", lambda r, f: calls.append(1) or r.headline(f), filters)
    assert calls == [1], "a new data version is a new key"
    engine.dispose()


def test_a_cache_that_is_away_slows_down_but_does_not_break(demo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDATLAS_CACHE_DIR", str(tmp_path / "copies"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    engine = open_store(demo_store)
    context = AppContext(engine, use_columnar=False,
                         cache=make_cache(redis_url=f"redis://127.0.0.1:{closed_port}/0", prefix="away"))
    head = context.cached("headline", lambda r, f: r.headline(f), Filters())
    assert head.rows > 0
    engine.dispose()
