"""The columnar copy answers exactly what SQL answers, on SQLite and PostgreSQL, for many filter states."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from data_sources import columnar, queries
from data_sources.filters import Filters
from data_sources.store import open_store
from tests.conftest import _drop_pg, _new_pg_url

SORTS = ([], [("amount_usd", "desc")], [("amount_usd", "asc")], [("year", "asc"), ("amount", "desc")])


def _edge_cases(engine) -> None:
    """Values the demo lacks: duplicates, no USD, no year, no funder id, non-ASCII names, LIKE wildcards."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE allocations SET duplicate_of = 'iati:other:0' WHERE row_id % 17 = 0"))
        conn.execute(text("UPDATE allocations SET amount_usd = NULL WHERE row_id % 23 = 0"))
        conn.execute(text("UPDATE allocations SET year = NULL WHERE row_id % 29 = 0"))
        conn.execute(text("UPDATE allocations SET funder_id = NULL, funder_name = 'ÁGUA Pura 100%_Trust' "
                          "WHERE row_id % 31 = 0"))
        conn.execute(text("UPDATE allocations SET country_iso3 = NULL, country_name = NULL WHERE row_id % 37 = 0"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_engine(request, tmp_path_factory):
    """The demo bundle plus edge cases, in a store of each kind."""
    from data_sources.cli import run_demo

    folder = tmp_path_factory.mktemp("columnar")
    url = f"sqlite:///{folder / 'store.sqlite'}" if request.param == "sqlite" else _new_pg_url(
        request.getfixturevalue("pg_template"))
    engine = open_store(url)
    assert run_demo(engine, folder / "files") == 0
    _edge_cases(engine)
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        _drop_pg(url)


@pytest.fixture(scope="module")
def table(demo_engine, tmp_path_factory):
    return columnar.ensure(demo_engine, root=tmp_path_factory.mktemp("copies"))


def _assert_same(engine, table: columnar.ColumnarTable, filters: Filters) -> None:
    sql = queries.country_totals(engine, filters)
    fast = table.country_totals(filters)
    pd.testing.assert_frame_equal(sql, fast, check_dtype=False, rtol=1e-9)
    assert _approx_headline(queries.headline(engine, filters)) == _approx_headline(table.headline(filters))
    for dimension in queries.BREAKDOWNS:
        sql = queries.totals_by(engine, filters, dimension, 10)
        fast = table.totals_by(filters, dimension, 10)
        pd.testing.assert_frame_equal(sql, fast, check_dtype=False, rtol=1e-9)
    count = queries.filtered_row_count(engine, filters)
    assert table.row_count(filters) == count
    for sort in SORTS:
        rows, total = queries.table_page(engine, filters, 0, 40, sort, columns=["row_id"])
        assert table.page_row_ids(filters, 0, 40, sort) == [r["row_id"] for r in rows], sort
        assert total == count


def _approx_headline(head: queries.Headline):
    flows = {k: round(v, 2) for k, v in head.usd_by_flow_type.items()}
    return (round(head.usd, 2), head.records, head.funders, head.recipients, head.rows,
            round(head.usd_without_country, 2), head.amounts_without_usd, flows)


def _values(engine, column: str, limit: int = 6) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT DISTINCT {column} FROM allocations WHERE {column} IS NOT NULL "  # noqa: S608
                                 f"ORDER BY {column} LIMIT {limit}"))
        return [str(r[0]) for r in rows]


FIXED = [
    Filters(),
    Filters(themes=("WASH",)),
    Filters(themes=("WASH", "Health"), year_from=2018, year_to=2021),
    Filters(countries=("KEN", "UGA", "ZZZ")),
    Filters(q="water"),
    Filters(q="ÁGUA"),
    Filters(q="água"),
    Filters(q="100%_"),
    Filters(q="%"),
    Filters(funders=("ÁGUA Pura 100%_Trust",)),
    Filters(year_to=2019),
    Filters(min_usd=250_000),
    Filters(sources=("iati",), flow_types=("disbursement", "commitment")),
    Filters(sources=("hdx_3w",)),
    Filters(countries=("KEN",), q="nothing matches this"),
]


@pytest.mark.parametrize("filters", FIXED, ids=lambda f: f.to_query_string() or "none")
def test_columnar_answers_equal_sql(demo_engine, table, filters):
    _assert_same(demo_engine, table, filters)


def test_columnar_answers_equal_sql_for_generated_filter_states(demo_engine, table):
    funders = _values(demo_engine, "funder_id") + _values(demo_engine, "funder_name")
    recipients = _values(demo_engine, "recipient_name")
    countries = _values(demo_engine, "country_iso3", 10)
    admin1 = _values(demo_engine, "admin1_pcode")
    sectors = _values(demo_engine, "sector_code")
    themes = _values(demo_engine, "theme", 20)

    def subset(values):
        return st.lists(st.sampled_from(values), max_size=3).map(tuple) if values else st.just(())

    states = st.builds(
        Filters, countries=subset(countries), admin1=subset(admin1), funders=subset(funders),
        recipients=subset(recipients), themes=subset(themes), sectors=subset(sectors),
        sources=subset(["iati", "360giving", "hdx_3w", "oecd_crs", "ocha_fts"]),
        flow_types=subset(["commitment", "disbursement", "grant", "presence"]),
        year_from=st.one_of(st.none(), st.integers(2010, 2024)), year_to=st.one_of(st.none(), st.integers(2012, 2026)),
        min_usd=st.one_of(st.none(), st.sampled_from([0.0, 1e4, 1e6])),
        q=st.one_of(st.none(), st.sampled_from(["wat", "health", "Demo", "a", "ÁG"])),
    )

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(states)
    def check(filters):
        _assert_same(demo_engine, table, filters)

    check()


def test_options_and_labels_equal_sql(demo_engine, table):
    for kind in ("funder", "recipient", "country", "theme", "sector", "source"):
        assert table.options(kind, 50) == queries.options(demo_engine, kind, "", 50), kind
        values = [o["value"] for o in queries.options(demo_engine, kind, "", 8)] + ["not-a-value"]
        assert table.labels_for(kind, values) == queries.labels_for(demo_engine, kind, values), kind


def test_copy_is_saved_once_per_data_version_and_replaced_after_a_change(demo_engine, tmp_path):
    first = columnar.ensure(demo_engine, root=tmp_path)
    folder = columnar.folder_for(demo_engine, first.version, tmp_path)
    assert (folder / "meta.json").exists()
    stamp = (folder / "meta.json").stat().st_mtime_ns
    again = columnar.ensure(demo_engine, root=tmp_path)
    assert again.version == first.version and (folder / "meta.json").stat().st_mtime_ns == stamp
    assert again.row_count(Filters()) == queries.row_count(demo_engine)
    from data_sources.store import mark_changed

    with demo_engine.begin() as conn:
        mark_changed(conn)
    newer = columnar.ensure(demo_engine, root=tmp_path)
    assert newer.version != first.version
    assert not folder.exists(), "the copy of the old version is removed"
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [
        columnar.folder_for(demo_engine, newer.version, tmp_path).name]


def test_concurrent_builders_build_once(demo_engine, tmp_path):
    results: list[columnar.ColumnarTable] = []
    threads = [threading.Thread(target=lambda: results.append(columnar.ensure(demo_engine, root=tmp_path)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert len({r.meta["built_by"] for r in results}) == 1, "one build, opened by all"
    store_folder = columnar.folder_for(demo_engine, results[0].version, tmp_path).parent
    assert len([p for p in store_folder.iterdir() if p.is_dir()]) == 1, "no scratch folder left behind"


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path):
    from data_sources.store import open_store

    engine = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE allocations"))
    with pytest.raises(RuntimeError, match="building the columnar copy failed"):
        columnar.ensure(engine, root=tmp_path / "copies")
    leftovers = [p for p in (tmp_path / "copies").rglob("v*") if p.is_dir()]  # copies and scratch folders
    assert leftovers == [], leftovers


def test_empty_store_gives_empty_answers(engine, tmp_path):
    table = columnar.ensure(engine, root=tmp_path)
    assert table.rows == 0
    assert table.country_totals(Filters()).empty
    assert table.headline(Filters()).rows == 0
    assert table.totals_by(Filters(), "funder").empty
    assert table.page_row_ids(Filters(), 0, 10) == []
    assert table.options("funder") == []


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="abÁ%_", max_size=6)), max_size=10),
       st.text(alphabet="abÁ%_", min_size=1, max_size=4), st.integers(0, 3))
def test_substring_search_equals_a_per_string_search(texts, needle, offset):
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(texts, type=pa.string())
    values = values.slice(min(offset, len(values)))  # arrays that do not start at their buffer's start
    expected = pc.match_substring(values, needle).fill_null(False).to_numpy(zero_copy_only=False)
    assert columnar.substring_hits(values, needle).tolist() == expected.tolist()
