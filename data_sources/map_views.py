"""The map's aggregates beyond country totals: admin-1 areas, point cells, regional money, place precision.

Each comes from SQL (``*_sql(engine, ...)``, bound parameters, the same filters as ``queries``) and,
where the columnar copy holds what it needs, from the copy (``*_columnar(table, ...)``); both give the
same frames (tests compare them on SQLite and PostgreSQL). ``reader`` functions pick the copy when the
reader has one (``callbacks.context.ColumnarReader``), else SQL.

The copy has no ``geo_level`` or ``region`` column, and nothing is added to it: the rows' place
precision is read once per copy (``row_id`` and ``geo_level`` of the rows that are not country-level,
usually a small part) and kept beside it, keyed by the copy's data version. Regional money (rows with
no country, by ``region``) is SQL only: a small group-by over the rows without a country.

Point cells: ``geo_level = 'point'`` rows grouped into grid cells ``floor(lat / size)``,
``floor(lon / size)`` (``cell_size``: coarse for the world, fine for a drilled country), each drawn at
its cell's centre, at most ``MAX_MARKERS`` cells (the largest by money; the rest are counted).
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, distinct, func, literal, select, text

from data_sources import columnar, queries
from data_sources.filters import Filters
from data_sources.store import allocations

A = allocations.c
PRECISIONS = ("point", "admin2", "admin1", "country", "region", "unknown")
NO_REGION = "(global / unspecified)"
MAX_MARKERS = 1500
WORLD_CELL = 1.0  # degrees (~110 km)
COUNTRY_CELL = 0.1  # degrees (~11 km) in a drilled country
POPULATION_CSV = Path(__file__).resolve().parents[1] / "assets" / "population.csv"
ADMIN1_COLUMNS = ["code", "usd", "rows", "records", "funders", "recipients"]
CELL_COLUMNS = ["cell_lat", "cell_lon", "lat", "lon", "rows", "usd"]


def cell_size(drill: str | None) -> float:
    """Grid cell size in degrees: coarse for the world map, fine for a drilled country."""
    return COUNTRY_CELL if drill else WORLD_CELL


@cache
def population() -> dict[str, int]:
    """Natural Earth ``pop_est`` by ISO3 (assets/population.csv, read once)."""
    with POPULATION_CSV.open(encoding="utf-8", newline="") as handle:
        return {row["iso3"]: int(row["pop_est"]) for row in csv.DictReader(handle)}


def is_columnar(reader: object) -> bool:
    return getattr(reader, "table", None) is not None


# --- admin-1 totals ----------------------------------------------------------------------------


def admin1_filters(filters: Filters, iso3: str) -> Filters:
    """The drilled map's rows: the country's, every area shown (the admin-1 filter only outlines)."""
    return replace(filters, countries=(iso3,), admin1=())


def admin1_totals_sql(engine: Engine, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    """Per ``admin1_pcode`` (rows with one): money, rows, distinct records, funders, recipients."""
    with engine.connect() as conn:
        parties = queries.Parties.of(conn)
        source, keys = parties.joined(queries.PARTIES)
        query = (
            select(A.admin1_pcode.label("code"),
                   func.coalesce(func.sum(queries.money_column(currency)), 0.0).label("usd"),
                   func.count().label("rows"),
                   func.count(distinct(queries._record_key())).label("records"),
                   func.count(distinct(keys["funder"])).label("funders"),
                   func.count(distinct(keys["recipient"])).label("recipients"))
            .select_from(source)
            .where(parties.counted(filters), A.admin1_pcode.is_not(None))
            .group_by(A.admin1_pcode).order_by(A.admin1_pcode)
        )
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=ADMIN1_COLUMNS)
    return _typed(frame, ("rows", "records", "funders", "recipients"))


def admin1_totals_columnar(table, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    g = table.grouped(filters, "admin1", currency)
    counts = {name: columnar.distinct_per_group(g.codes, keys[g.chosen], g.size)[g.present] for name, keys in (
        ("records", table.arrays["record"]), ("funders", table.dims["funder"].codes),
        ("recipients", table.dims["recipient"].codes))}
    frame = pd.DataFrame({"code": table.dims["admin1"].values.take(pa.array(g.present)).to_pylist(),
                          "usd": g.usd[g.present], "rows": g.rows[g.present], **counts}, columns=ADMIN1_COLUMNS)
    return _typed(frame.sort_values("code", kind="stable").reset_index(drop=True),
                  ("rows", "records", "funders", "recipients"))


def admin1_totals(reader, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    if is_columnar(reader):
        return admin1_totals_columnar(reader.table, filters, currency)
    return admin1_totals_sql(reader.engine, filters, currency)


# --- point cells -------------------------------------------------------------------------------


def point_cells_sql(engine: Engine, filters: Filters, size: float, currency: str = "USD") -> pd.DataFrame:
    """``geo_level = 'point'`` rows with a lat/lon, by grid cell: rows and money (all cells, uncapped)."""
    cell_lat = func.floor(A.lat / literal(float(size)))
    cell_lon = func.floor(A.lon / literal(float(size)))
    with engine.connect() as conn:
        parties = queries.Parties.of(conn)
        query = (
            select(cell_lat.label("cell_lat"), cell_lon.label("cell_lon"), func.count().label("rows"),
                   func.coalesce(func.sum(queries.money_column(currency)), 0.0).label("usd"))
            .where(parties.counted(filters), A.geo_level == "point", A.lat.is_not(None), A.lon.is_not(None))
            .group_by(cell_lat, cell_lon)
        )
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["cell_lat", "cell_lon", "rows", "usd"])
    return _cells(frame, size)


def point_cells_columnar(table, engine: Engine, filters: Filters, size: float, currency: str = "USD") -> pd.DataFrame:
    a = table.arrays
    chosen = table.counted(filters)
    levels, names = place_levels(table, engine)
    chosen = chosen[(levels[chosen] == names.index("point")) & ~np.isnan(a["lat"][chosen])
                    & ~np.isnan(a["lon"][chosen])]
    cell_lat = np.floor(a["lat"][chosen] / float(size)).astype(np.int64)
    cell_lon = np.floor(a["lon"][chosen] / float(size)).astype(np.int64)
    keys, inverse = np.unique(np.stack([cell_lat, cell_lon], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    frame = pd.DataFrame({
        "cell_lat": keys[:, 0] if len(keys) else np.zeros(0, np.int64),
        "cell_lon": keys[:, 1] if len(keys) else np.zeros(0, np.int64),
        "rows": np.bincount(inverse, minlength=len(keys)),
        "usd": np.bincount(inverse, weights=table.money(currency)[chosen], minlength=len(keys)),
    })
    return _cells(frame, size)


def _cells(frame: pd.DataFrame, size: float) -> pd.DataFrame:
    """Cells with their centres, largest money first (ties: more rows, then south-west first)."""
    frame = frame.astype({"cell_lat": np.int64, "cell_lon": np.int64, "rows": np.int64, "usd": float})
    frame["lat"] = (frame["cell_lat"] + 0.5) * size
    frame["lon"] = (frame["cell_lon"] + 0.5) * size
    # Sums differ in their last bits between SQL and numpy: order by cents, so ties break the same way.
    frame["_cents"] = frame["usd"].round(2)
    frame = frame.sort_values(["_cents", "rows", "cell_lat", "cell_lon"], ascending=[False, False, True, True],
                              kind="stable")
    return frame[CELL_COLUMNS].reset_index(drop=True)


def point_cells(reader, filters: Filters, size: float, currency: str = "USD") -> pd.DataFrame:
    if is_columnar(reader):
        return point_cells_columnar(reader.table, reader.engine, filters, size, currency)
    return point_cells_sql(reader.engine, filters, size, currency)


@dataclass(frozen=True)
class Capped:
    cells: pd.DataFrame  # at most ``limit`` cells, the largest by money
    dropped_cells: int
    dropped_rows: int
    dropped_usd: float


def cap_cells(cells: pd.DataFrame, limit: int = MAX_MARKERS) -> Capped:
    """The ``limit`` largest cells (``cells`` come sorted, largest first) and what the rest hold."""
    rest = cells.iloc[limit:]
    return Capped(cells.iloc[:limit].reset_index(drop=True), len(rest), int(rest["rows"].sum()),
                  float(rest["usd"].sum()))


# --- place precision ---------------------------------------------------------------------------


def _sparse_column(table, engine: Engine, query: str) -> tuple[np.ndarray, list]:
    """(positions in the copy, values) of the rows ``query`` selects (``row_id, value``), read once per
    copy for columns the copy does not keep; StaleCopy when the store has changed since it was built."""
    with engine.connect() as conn:
        before = queries.data_version(engine, conn)
        found = conn.execute(text(query)).all()
        after = queries.data_version(engine, conn)
    if not before == after == table.version:
        raise StaleCopy("the store changed since the columnar copy was built")
    row_ids = np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))
    position = np.searchsorted(table.arrays["row_id"], row_ids)  # the copy is ordered by row_id
    inside = position < table.rows
    return position[inside], [r[1] for r, keep in zip(found, inside, strict=True) if keep]


def place_levels(table, engine: Engine) -> tuple[np.ndarray, list[str]]:
    """Each copy row's place precision as a code into the returned names (``PRECISIONS`` first, then any
    other stored value), read once per copy: only rows that are not ``country``-level are fetched."""
    memo = table.__dict__.setdefault("_map_views", {})
    if "levels" not in memo:
        position, found = _sparse_column(table, engine, "SELECT row_id, geo_level FROM allocations "
                                         "WHERE geo_level IS NULL OR geo_level <> 'country'")
        names = list(PRECISIONS)
        names += sorted({level for level in found if level is not None and level not in names})
        levels = np.full(table.rows, names.index("country"), dtype=np.int8)
        levels[position] = np.fromiter((names.index(v if v is not None else "unknown") for v in found),
                                       dtype=np.int8, count=len(found))
        memo["levels"] = (levels, names)
    return memo["levels"]


def region_codes(table, engine: Engine) -> tuple[np.ndarray, list[str]]:
    """Each copy row's region as a code into the returned names (``NO_REGION`` for an empty one), -1 for
    rows with a country; read once per copy: only rows without a country are fetched."""
    memo = table.__dict__.setdefault("_map_views", {})
    if "regions" not in memo:
        position, found = _sparse_column(
            table, engine, "SELECT row_id, region FROM allocations WHERE country_iso3 IS NULL")
        values = [v if v is not None else NO_REGION for v in found]
        names = sorted(set(values))
        index = {name: i for i, name in enumerate(names)}
        codes = np.full(table.rows, -1, dtype=np.int32)
        codes[position] = np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))
        memo["regions"] = (codes, names)
    return memo["regions"]


class StaleCopy(RuntimeError):
    """The copy is older than the store: answer from SQL."""


def precision_sql(engine: Engine, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    """Money and rows by place precision (``geo_level``, empty as ``unknown``), in ``PRECISIONS`` order."""
    level = func.coalesce(A.geo_level, "unknown")
    with engine.connect() as conn:
        parties = queries.Parties.of(conn)
        query = (select(level.label("geo_level"), func.count().label("rows"),
                        func.coalesce(func.sum(queries.money_column(currency)), 0.0).label("usd"))
                 .where(parties.counted(filters)).group_by(level))
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["geo_level", "rows", "usd"])
    return _precision_frame(frame)


def precision_columnar(table, engine: Engine, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    levels, names = place_levels(table, engine)
    chosen = table.counted(filters)
    codes = levels[chosen].astype(np.int64)
    rows = np.bincount(codes, minlength=len(names))
    usd = np.bincount(codes, weights=table.money(currency)[chosen], minlength=len(names))
    present = np.flatnonzero(rows)
    return _precision_frame(pd.DataFrame({"geo_level": [names[i] for i in present], "rows": rows[present],
                                          "usd": usd[present]}))


def _precision_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"rows": np.int64, "usd": float})
    order = {name: i for i, name in enumerate(PRECISIONS)}
    frame["_order"] = frame["geo_level"].map(lambda v: order.get(v, len(order)))
    frame = frame.sort_values(["_order", "geo_level"], kind="stable").drop(columns="_order")
    total = float(frame["usd"].sum())
    frame["share"] = frame["usd"] / total if total > 0 else 0.0
    return frame.reset_index(drop=True)


def precision(reader, filters: Filters, currency: str = "USD") -> pd.DataFrame:
    if is_columnar(reader):
        try:
            return precision_columnar(reader.table, reader.engine, filters, currency)
        except StaleCopy:
            pass
    return precision_sql(reader.engine, filters, currency)


def point_cells_any(reader, filters: Filters, size: float, currency: str = "USD") -> pd.DataFrame:
    """``point_cells`` that falls back to SQL when the copy is older than the store."""
    try:
        return point_cells(reader, filters, size, currency)
    except StaleCopy:
        return point_cells_sql(reader.engine, filters, size, currency)


# --- regional and global money -------------------------------------------------------------------


def region_totals_sql(engine: Engine, filters: Filters, currency: str = "USD", limit: int = 10) -> pd.DataFrame:
    """Money no country holds: counted rows with no ``country_iso3``, by ``region`` (empty as
    ``NO_REGION``), largest first; beyond ``limit`` regions the rest are summed as one "other" line."""
    region = func.coalesce(A.region, NO_REGION)
    with engine.connect() as conn:
        parties = queries.Parties.of(conn)
        query = (select(region.label("region"), func.count().label("rows"),
                        func.coalesce(func.sum(queries.money_column(currency)), 0.0).label("usd"))
                 .where(parties.counted(filters), A.country_iso3.is_(None)).group_by(region))
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=["region", "rows", "usd"])
    return _regions_frame(frame, limit)


def region_totals_columnar(table, engine: Engine, filters: Filters, currency: str = "USD",
                           limit: int = 10) -> pd.DataFrame:
    """``region_totals_sql`` from the copy (the regions of rows without a country are read once)."""
    codes, names = region_codes(table, engine)
    chosen = table.counted(filters)
    picked = codes[chosen]
    keep = picked >= 0
    rows = np.bincount(picked[keep], minlength=len(names))
    usd = np.bincount(picked[keep], weights=table.money(currency)[chosen][keep], minlength=len(names))
    present = np.flatnonzero(rows)
    return _regions_frame(pd.DataFrame({"region": [names[i] for i in present], "rows": rows[present],
                                        "usd": usd[present]}), limit)


def _regions_frame(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    frame = frame.astype({"rows": np.int64, "usd": float}).sort_values(
        ["usd", "region"], ascending=[False, True], kind="stable").reset_index(drop=True)
    if len(frame) > limit:
        rest = frame.iloc[limit - 1:]
        other = pd.DataFrame({"region": [f"{len(rest)} other regions"], "rows": [int(rest["rows"].sum())],
                              "usd": [float(rest["usd"].sum())]})
        frame = pd.concat([frame.iloc[:limit - 1], other], ignore_index=True)
    return frame


def region_totals(reader, filters: Filters, currency: str = "USD", limit: int = 10) -> pd.DataFrame:
    """Money no country holds, from the copy when it is current, else SQL."""
    if is_columnar(reader):
        try:
            return region_totals_columnar(reader.table, reader.engine, filters, currency, limit)
        except StaleCopy:
            pass
    return region_totals_sql(reader.engine, filters, currency, limit)


def warm(table, engine: Engine) -> None:
    """Read the columns the copy lacks now (start-up), not in the first user's map update."""
    with contextlib.suppress(StaleCopy):
        place_levels(table, engine)
        region_codes(table, engine)


# --- admin-1 shapes -----------------------------------------------------------------------------


def countries_with_admin1(engine: Engine) -> frozenset[str]:
    """ISO3 of the countries whose admin-1 areas are stored (``fundatlas boundaries add``)."""
    from data_sources import boundaries

    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "admin_area_maps"):
            return frozenset()
        found = conn.execute(select(boundaries.admin_area_maps.c.country_iso3)
                             .where(boundaries.admin_area_maps.c.level == 1)).scalars()
        return frozenset(found)


def admin1_shapes(engine: Engine, iso3: str, max_bytes: int = 200_000) -> dict | None:
    """The stored simplified admin-1 FeatureCollection of ``iso3`` (id = area code), exterior rings
    clockwise for plotly, simplified further until it is under ``max_bytes``; None when there is none."""
    from data_sources import boundaries

    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "admin_area_maps"):
            return None
        stored = conn.execute(select(boundaries.admin_area_maps.c.geojson).where(
            boundaries.admin_area_maps.c.country_iso3 == iso3, boundaries.admin_area_maps.c.level == 1)).scalar()
    if stored is None:
        return None
    return fit_shapes(json.loads(stored), max_bytes)


def fit_shapes(collection: dict, max_bytes: int = 200_000,
               tolerances: Sequence[float] = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)) -> dict:
    """``collection`` with clockwise exteriors and 3-decimal coordinates, simplified by the first of
    ``tolerances`` that brings it under ``max_bytes`` (the last one otherwise)."""
    import shapely
    from shapely.geometry import mapping, shape

    geoms = [shape(f["geometry"]) for f in collection["features"]]
    best: dict = collection
    for tolerance in tolerances:
        features = []
        for feature, geom in zip(collection["features"], geoms, strict=True):
            small = shapely.simplify(geom, tolerance, preserve_topology=True) if tolerance else geom
            small = shapely.orient_polygons(shapely.set_precision(small, 1e-3), exterior_cw=True)
            props = feature.get("properties") or {}
            features.append({"type": "Feature", "id": feature.get("id"),
                             "properties": {k: props.get(k) for k in ("code", "name")},
                             "geometry": _round(mapping(small))})
        best = {"type": "FeatureCollection", "features": features}
        if len(json.dumps(best, separators=(",", ":"))) <= max_bytes:
            break
    return best


def bounds(collection: dict) -> tuple[float, float, float, float] | None:
    """(min lon, min lat, max lon, max lat) of a FeatureCollection."""
    import shapely
    from shapely.geometry import shape

    geoms = [shape(f["geometry"]) for f in collection.get("features", []) if f.get("geometry")]
    if not geoms:
        return None
    return tuple(float(v) for v in shapely.total_bounds(geoms))  # type: ignore[return-value]


def _round(obj):
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if obj and isinstance(obj[0], float | int):
            return [round(float(v), 3) for v in obj]
        return [_round(v) for v in obj]
    return obj


def _typed(frame: pd.DataFrame, counts: Sequence[str]) -> pd.DataFrame:
    return frame.astype({"usd": float, **{c: np.int64 for c in counts}})
