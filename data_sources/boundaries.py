"""Admin areas from boundary files the user adds, and the pass that places rows in them.

``fundatlas boundaries add FILE`` reads a GeoJSON, GeoPackage, shapefile or TopoJSON file (anything
GDAL reads, through pyogrio) of admin-1 or admin-2 areas, e.g. OCHA COD-AB files with P-codes or
Natural Earth admin-1, and stores one row per area in ``admin_areas``; then ``assign_places`` places
the stored allocation rows in them.

Fields (``detect_fields``; ``--code-field``/``--name-field``/``--country-field`` override): the code
is the first of ``ADM{n}_PCODE``, ``admin{n}Pcode``, ``HASC_{n}``, ``code_hasc``, ``GID_{n}``,
``adm1_code``, ``shapeID``, ``id``, ``code`` present whose values are all set and, where repeated,
name one area (Natural Earth's Afghanistan repeats ``AF.OZ`` and ``AF.PV`` for two polygons each:
they are merged into one area; Palestine's two areas share ``PS``, so ``adm1_code`` is used).
The name: ``ADM{n}_EN``, ``admin{n}Name_en``, ``NAME_{n}``, ``shapeName``, ``name_en``, ``name``;
alternative names: ``name_alt``, ``ADM{n}ALT1_EN``, ``VARNAME_{n}``... (``|``-separated);
the country: ``ADM0_PCODE``, ``adm0_a3``, ``iso_a3``, ``GID_0``, ``shapeGroup``..., else
``--country``, else the letters the code starts with (``SV.AH`` -> SLV, ``AF01`` -> AFG), turned into
ISO3 by ``geography.to_iso3`` (Natural Earth's own ``PSX`` is PSE, ``KOS`` XKX, ``SDS`` SSD). The
level: ``--level``, else 2 when the file has ``ADM2_PCODE``-style fields, else 1; admin-2 areas keep
their admin-1 code as ``parent_code``.

Validation names the file, the feature and the field: no code field, an empty code, one code for
two differently named areas, an unknown country, no geometry, a geometry that is not a polygon or
not in degrees. Self-intersecting polygons are repaired (``shapely.make_valid``) and counted.
Nothing is stored when any feature fails.

Storing: the areas of one country and level come from one file. A file whose content and options
are already stored changes nothing; a new version (or another file for the same country and level)
replaces those areas. Each (country, level) also gets a simplified GeoJSON FeatureCollection
(``admin_area_maps``, feature id = area code) for the map. On PostgreSQL ``admin_areas.geom`` is a
generated PostGIS MultiPolygon column with a GIST index.

``assign_places(conn)`` (inside the caller's transaction, idempotent):

* rows with a point (``geo_level = 'point'``) and no admin-1 get the code and name of the level-1
  area of their country that contains the point (a shapely STRtree bulk query; the smallest area
  on overlaps; an area within 0.05 degrees when the point falls just outside a coastline), method
  ``point`` or ``nearest``; level-2 areas are linked too. The area's code goes into
  ``admin1_pcode`` and its name into ``admin1_name``;
* rows whose source gives an admin-1 code or name (3W, mapped tables) keep them as given; each
  distinct (country, code, name) is matched once with ``placematch.match_place`` (code, normalised
  name, fuzzy) and recorded in ``place_matches``, unmatched ones with the reason and nearest name;
* ``allocation_areas(row_id, level, area_id, method)`` links each placed row to its area, so the map
  can aggregate by area; links of deleted rows are dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
    text,
)

from data_sources import geography, placematch
from data_sources.errors import LoadError
from data_sources.store import lock_for_writes, mark_changed, metadata

# --- tables -------------------------------------------------------------------------------------

admin_areas = Table(
    "admin_areas",
    metadata,
    Column("area_id", Integer, primary_key=True, autoincrement=True),
    Column("country_iso3", String(3), nullable=False),
    Column("level", Integer, nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text),
    Column("alt_names", Text),  # "|"-separated
    Column("parent_code", Text),
    Column("source_file", Text, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("minx", Float(precision=53), nullable=False),
    Column("miny", Float(precision=53), nullable=False),
    Column("maxx", Float(precision=53), nullable=False),
    Column("maxy", Float(precision=53), nullable=False),
    Column("geometry_wkb", LargeBinary, nullable=False),  # MultiPolygon, WGS84
    UniqueConstraint("country_iso3", "level", "code", name="uq_admin_areas_code"),
    Index("ix_admin_areas_source_file", "source_file"),
    sqlite_autoincrement=True,  # an id is never reused, so a link never points at another area
)

# One simplified FeatureCollection per country and level, for the map to draw.
admin_area_maps = Table(
    "admin_area_maps",
    metadata,
    Column("country_iso3", String(3), nullable=False),
    Column("level", Integer, nullable=False),
    Column("source_file", Text, nullable=False),
    Column("geojson", Text, nullable=False),
    PrimaryKeyConstraint("country_iso3", "level", name="pk_admin_area_maps"),
)

allocation_areas = Table(
    "allocation_areas",
    metadata,
    Column("row_id", Integer, nullable=False),
    Column("level", Integer, nullable=False),
    Column("area_id", Integer, nullable=False),
    Column("method", String(8), nullable=False),  # point, nearest, code, name, fuzzy
    PrimaryKeyConstraint("row_id", "level", name="pk_allocation_areas"),
    Index("ix_allocation_areas_area", "area_id"),
)

# Every distinct admin-1 (country, code, name) that sources give, in countries with boundaries:
# the area it matched and how, or why it did not (area_id empty). Missing values are ''.
place_matches = Table(
    "place_matches",
    metadata,
    Column("match_id", Integer, primary_key=True, autoincrement=True),
    Column("country_iso3", String(3), nullable=False),
    Column("level", Integer, nullable=False),
    Column("source_code", Text, nullable=False),
    Column("source_name", Text, nullable=False),
    Column("area_id", Integer),
    Column("method", String(8)),
    Column("score", Float),
    Column("rows", Integer, nullable=False),
    Column("reason", Text),
    Column("nearest", Text),
    UniqueConstraint("country_iso3", "level", "source_code", "source_name", name="uq_place_matches_key"),
)

TABLES = (admin_areas, admin_area_maps, allocation_areas, place_matches)
POINT_METHODS = ("point", "nearest")
NAME_METHODS = ("code", "name", "fuzzy")
NEAREST_DEGREES = 0.05  # about 5 km: coastal points just outside a simplified coastline
MAP_TOLERANCE = 0.002  # degrees (about 200 m) for the map's simplified shapes

_POSTGIS_DDL = (
    "ALTER TABLE admin_areas ADD COLUMN IF NOT EXISTS geom geometry(MultiPolygon, 4326) GENERATED ALWAYS AS "
    "(ST_Multi(ST_SetSRID(ST_GeomFromWKB(geometry_wkb), 4326))) STORED",
    "CREATE INDEX IF NOT EXISTS ix_admin_areas_geom ON admin_areas USING GIST (geom)",
)


def ensure_tables(conn: Connection) -> None:
    """Create this module's tables (and the PostGIS column) when missing, in the caller's transaction."""
    metadata.create_all(conn, tables=list(TABLES), checkfirst=True)
    if conn.dialect.name == "postgresql":
        if conn.execute(text("SELECT to_regclass('ix_admin_areas_geom')")).scalar() is None:
            for statement in _POSTGIS_DDL:
                conn.execute(text(statement))


# --- reading ------------------------------------------------------------------------------------


class BoundaryError(LoadError):
    """A boundary file that cannot be used; nothing of it is stored."""


# Natural Earth's adm0_a3 codes that are not ISO 3166 alpha-3.
_NE_COUNTRY_CODES = {"PSX": "PSE", "KOS": "XKX", "SDS": "SSD", "SAH": "ESH", "SOL": "SOM", "CYN": "CYP"}


def _code_fields(level: int) -> list[str]:
    fields = [f"ADM{level}_PCODE", f"admin{level}Pcode", f"adm{level}_pcode", f"HASC_{level}", "code_hasc",
              f"GID_{level}"]
    if level == 1:
        fields.append("adm1_code")
    return [*fields, "shapeID", "pcode", "id", "code"]


def _name_fields(level: int) -> list[str]:
    return [f"ADM{level}_EN", f"admin{level}Name_en", f"adm{level}_name", f"ADM{level}_FR", f"ADM{level}_ES",
            f"ADM{level}_PT", f"NAME_{level}", "shapeName", "name_en", "name"]


def _alt_fields(level: int) -> list[str]:
    return ["name_alt", f"ADM{level}ALT1_EN", f"ADM{level}ALT2_EN", f"ADM{level}ALT1EN", f"ADM{level}ALT2EN",
            f"VARNAME_{level}"]


_COUNTRY_FIELDS = ["ADM0_PCODE", "admin0Pcode", "adm0_a3", "iso_a3", "ISO3", "GID_0", "shapeGroup", "ADM0_EN",
                   "admin"]


def _parent_fields(level: int) -> list[str]:
    return [f"ADM{level - 1}_PCODE", f"admin{level - 1}Pcode", f"adm{level - 1}_pcode", f"HASC_{level - 1}",
            f"GID_{level - 1}"] if level > 1 else []


def _present(columns: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The columns named in ``wanted`` (case-insensitive), in ``wanted``'s order."""
    by_lower = {c.lower(): c for c in columns}
    out = []
    for name in wanted:
        if name.lower() in by_lower and by_lower[name.lower()] not in out:
            out.append(by_lower[name.lower()])
    return out


@dataclass(frozen=True)
class Fields:
    """The columns a boundary file's areas are read from."""

    code: str
    name: str | None
    country: str | None
    level: int
    parent: str | None = None
    alt: tuple[str, ...] = ()


@dataclass
class Area:
    country_iso3: str
    level: int
    code: str
    name: str | None
    geometry: Any  # shapely MultiPolygon, WGS84
    parent_code: str | None = None
    alt_names: tuple[str, ...] = ()


@dataclass
class BoundaryFile:
    """A boundary file read and validated: its areas, and what was done to get them."""

    path: str
    checksum: str
    fields: Fields
    features: int
    areas: list[Area]
    merged: int = 0  # features merged into another with the same code and name
    repaired: int = 0  # invalid geometries made valid

    @property
    def countries(self) -> list[str]:
        return sorted({a.country_iso3 for a in self.areas})


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            value = int(value)
    text_value = " ".join(str(value).split())
    return text_value or None


def _feature_label(index: int, name: str | None) -> str:
    return f"feature {index + 1}" + (f" ({name})" if name else "")


def _read_frame(path: Path, layer: str | None, level: int | None):
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # noqa: BLE001 (GDAL's errors vary by driver)
        raise BoundaryError(str(path), f"not a boundary file GDAL can read: {exc}") from exc
    names = [str(row[0]) for row in layers]
    if layer is None and len(names) > 1:
        wanted = re.compile(rf"adm(in)?_?{level or 1}(?!\d)", re.IGNORECASE)
        fitting = [n for n in names if wanted.search(n)]
        if len(fitting) != 1:
            raise BoundaryError(str(path), f"several layers ({', '.join(names)}): name one with --layer")
        layer = fitting[0]
    elif layer is not None and layer not in names:
        raise BoundaryError(str(path), f"no layer {layer!r} (layers: {', '.join(names)})")
    try:
        frame = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # noqa: BLE001
        raise BoundaryError(str(path), f"not a boundary file GDAL can read: {exc}") from exc
    if "geometry" not in getattr(frame, "columns", ()) or frame.geometry.isna().all():
        raise BoundaryError(str(path), "has no geometries: not a boundary file")
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    return frame, layer


def detect_fields(
    columns: Iterable[str],
    level: int | None = None,
    code_field: str | None = None,
    name_field: str | None = None,
    country_field: str | None = None,
) -> tuple[list[str], Fields]:
    """(code field candidates in order, the fields for everything else) for a file's ``columns``.

    Explicit fields must exist; otherwise the usual OCHA COD-AB, Natural Earth, GADM and
    geoBoundaries names are tried. The first code candidate is tried first (see ``read_boundaries``).
    """
    columns = [c for c in columns if c != "geometry"]
    for option, name in (("--code-field", code_field), ("--name-field", name_field),
                         ("--country-field", country_field)):
        if name is not None and name not in columns:
            raise ValueError(f"{option} {name!r} is not a field of this file (fields: {', '.join(columns)})")
    if level is None:
        level = 2 if _present(columns, ["ADM2_PCODE", "admin2Pcode", "adm2_pcode", "GID_2", "HASC_2"]) else 1
    codes = [code_field] if code_field else _present(columns, _code_fields(level))
    names = _present(columns, _name_fields(level))
    countries = _present(columns, _COUNTRY_FIELDS)
    parents = _present(columns, _parent_fields(level))
    fields = Fields(
        code=codes[0] if codes else "",
        name=name_field or (names[0] if names else None),
        country=country_field or (countries[0] if countries else None),
        level=level,
        parent=parents[0] if parents else None,
        alt=tuple(_present(columns, _alt_fields(level))),
    )
    return codes, fields


def _country_of(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return _NE_COUNTRY_CODES.get(value.upper()) or geography.to_iso3(value)


def _country_from_code(code: str) -> str | None:
    """ISO3 from the letters a code starts with: "SV.AH" -> SLV, "AF01" -> AFG, "AFG.1_1" -> AFG."""
    match = re.match(r"([A-Za-z]{2,3})(?=[.\d_-])", code)
    return _country_of(match.group(1)) if match else None


def _polygonal(geom):
    """The polygons of ``geom`` as a MultiPolygon, or None when it has none."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon | MultiPolygon)]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if isinstance(merged, MultiPolygon) else MultiPolygon([merged])


def _code_problem(frame, code_field: str, name_field: str | None) -> tuple[str, str] | None:
    """(feature, reason) why ``code_field`` cannot identify the areas, or None when it can."""
    seen: dict[str, tuple[int, str | None]] = {}
    for i, value in enumerate(frame[code_field]):
        code = _cell(value)
        name = _cell(frame[name_field].iloc[i]) if name_field else None
        if code is None:
            return _feature_label(i, name), "no area code (empty)"
        if code in seen and placematch.normalise_name(seen[code][1]) != placematch.normalise_name(name):
            first = _feature_label(seen[code][0], seen[code][1])
            return (_feature_label(i, name), f"code {code} is also {first}'s, a differently named area "
                    "(name another code field with --code-field)")
        seen.setdefault(code, (i, name))
    return None


def _checksum(path: Path, options: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    files = [path]
    if path.suffix.lower() == ".shp":  # a shapefile's attributes and index live in its siblings
        files += sorted(p for p in path.parent.glob(path.stem + ".*") if p != path)
    for item in files:
        with open(item, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(options, sort_keys=True).encode())
    return digest.hexdigest()


def read_boundaries(
    path: str | Path,
    country: str | None = None,
    level: int | None = None,
    code_field: str | None = None,
    name_field: str | None = None,
    country_field: str | None = None,
    layer: str | None = None,
) -> BoundaryFile:
    """Read and validate a boundary file; raises ``BoundaryError`` naming the file, feature and field."""
    import shapely

    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise BoundaryError(file, "no such file")
    if level is not None and level not in (1, 2):
        raise BoundaryError(file, f"level {level}: only admin levels 1 and 2 are supported", field="level")
    forced_country = None
    if country is not None:
        forced_country = _country_of(country)
        if forced_country is None:
            raise BoundaryError(file, f"--country {country!r} is not a known country", field="country")
    frame, layer = _read_frame(path, layer, level)
    try:
        codes, fields = detect_fields(frame.columns, level, code_field, name_field, country_field)
    except ValueError as exc:
        raise BoundaryError(file, str(exc)) from exc
    if not codes:
        raise BoundaryError(file, "no area code field (tried " + ", ".join(_code_fields(fields.level)) +
                            "; fields: " + ", ".join(c for c in frame.columns if c != "geometry") +
                            "): name one with --code-field")
    problems = {c: _code_problem(frame, c, fields.name) for c in codes}
    usable = [c for c in codes if problems[c] is None]
    if not usable:
        record, reason = problems[codes[0]]
        raise BoundaryError(file, reason, record=record, field=codes[0])
    fields = Fields(usable[0], fields.name, fields.country, fields.level, fields.parent, fields.alt)

    areas: dict[tuple[str, str], Area] = {}
    merged = repaired = 0
    for i in range(len(frame)):
        row = frame.iloc[i]
        code = _cell(row[fields.code])
        name = _cell(row[fields.name]) if fields.name else None
        label = _feature_label(i, name)
        iso3 = forced_country
        if iso3 is None and fields.country:
            iso3 = _country_of(_cell(row[fields.country]))
            if iso3 is None:
                raise BoundaryError(file, f"{fields.country} {_cell(row[fields.country])!r} is not a known country"
                                    " (give --country ISO3)", record=label, field=fields.country)
        if iso3 is None:
            iso3 = _country_from_code(code)
            if iso3 is None:
                raise BoundaryError(file, f"no country field and code {code!r} does not start with a country "
                                    "code: give --country ISO3", record=label, field="country")
        geom = row.geometry
        if geom is None or geom.is_empty:
            raise BoundaryError(file, "no geometry", record=label, field="geometry")
        if not shapely.is_valid(geom):
            geom = shapely.make_valid(geom)
            repaired += 1
        polygons = _polygonal(geom)
        if polygons is None:
            raise BoundaryError(file, f"a {row.geometry.geom_type} is not an area (polygon)", record=label,
                                field="geometry")
        minx, miny, maxx, maxy = polygons.bounds
        if minx < -180.5 or maxx > 180.5 or miny < -90.5 or maxy > 90.5:
            raise BoundaryError(file, f"coordinates {polygons.bounds} are not longitude/latitude degrees and "
                                "the file names no CRS", record=label, field="geometry")
        alts: list[str] = []
        for alt_field in fields.alt:
            for part in (_cell(row[alt_field]) or "").split("|"):
                if part.strip() and part.strip() != name and part.strip() not in alts:
                    alts.append(part.strip())
        key = (iso3, code)
        if key in areas:  # same code and name (checked above): one area in several features
            area = areas[key]
            area.geometry = _polygonal(shapely.union_all([area.geometry, polygons]))
            area.alt_names = tuple(dict.fromkeys(area.alt_names + tuple(alts)))
            merged += 1
            continue
        parent = _cell(row[fields.parent]) if fields.parent else None
        areas[key] = Area(iso3, fields.level, code, name, polygons, parent, tuple(alts))
    options = {"fields": vars(fields) | {"alt": list(fields.alt)}, "country": forced_country, "layer": layer}
    return BoundaryFile(str(path.resolve()), _checksum(path, options), fields, len(frame), list(areas.values()),
                        merged, repaired)


# --- storing ------------------------------------------------------------------------------------


def map_geojson(areas: list[dict[str, Any]], tolerance: float = MAP_TOLERANCE) -> str:
    """A simplified FeatureCollection (id = code; properties area_id, code, name, country_iso3, level)."""
    import shapely

    features = []
    for area in areas:
        geom = shapely.from_wkb(area["geometry_wkb"])
        small = shapely.set_precision(shapely.simplify(geom, tolerance, preserve_topology=True), 1e-4)
        features.append({
            "type": "Feature",
            "id": area["code"],
            "properties": {k: area[k] for k in ("area_id", "code", "name", "country_iso3", "level")},
            "geometry": json.loads(shapely.to_geojson(small)),
        })
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))


def _remove_areas(conn: Connection, iso3: str, level: int) -> int:
    """Delete the stored areas of a country and level. Rows placed in them by their point keep the
    link with area_id -1, so ``assign_places`` places them again (and clears their admin-1 when no
    new area holds them); name links go and are made again from ``place_matches``."""
    ids = select(admin_areas.c.area_id).where(admin_areas.c.country_iso3 == iso3, admin_areas.c.level == level)
    conn.execute(allocation_areas.update().where(allocation_areas.c.area_id.in_(ids),
                                                 allocation_areas.c.method.in_(POINT_METHODS)).values(area_id=-1))
    conn.execute(delete(allocation_areas).where(allocation_areas.c.area_id.in_(ids)))
    conn.execute(delete(place_matches).where(place_matches.c.area_id.in_(ids)))
    return conn.execute(delete(admin_areas).where(admin_areas.c.country_iso3 == iso3,
                                                  admin_areas.c.level == level)).rowcount


@dataclass
class StoreResult:
    added: int = 0  # areas written
    removed: int = 0  # areas they replaced
    unchanged: list[tuple[str, int]] = field(default_factory=list)  # (country, level) already stored
    replaced: list[tuple[str, int]] = field(default_factory=list)  # (country, level) written


def store_boundaries(conn: Connection, boundary: BoundaryFile) -> StoreResult:
    """Store ``boundary``'s areas in the caller's transaction: unchanged pairs are left alone, others
    replace the stored areas of their country and level (and the file's areas it no longer has)."""
    import shapely

    result = StoreResult()
    pairs: dict[tuple[str, int], list[Area]] = {}
    for area in boundary.areas:
        pairs.setdefault((area.country_iso3, area.level), []).append(area)
    stored = {
        (r.country_iso3, r.level): r.checksum
        for r in conn.execute(select(admin_areas.c.country_iso3, admin_areas.c.level, admin_areas.c.checksum)
                              .group_by(admin_areas.c.country_iso3, admin_areas.c.level, admin_areas.c.checksum))
    }
    now = datetime.now(UTC)
    for (iso3, level), areas in sorted(pairs.items()):
        if stored.get((iso3, level)) == boundary.checksum:
            result.unchanged.append((iso3, level))
            continue
        result.removed += _remove_areas(conn, iso3, level)
        conn.execute(insert(admin_areas), [{
            "country_iso3": iso3, "level": level, "code": a.code, "name": a.name,
            "alt_names": "|".join(a.alt_names) or None, "parent_code": a.parent_code,
            "source_file": boundary.path, "checksum": boundary.checksum, "added_at": now,
            "minx": a.geometry.bounds[0], "miny": a.geometry.bounds[1], "maxx": a.geometry.bounds[2],
            "maxy": a.geometry.bounds[3], "geometry_wkb": shapely.to_wkb(a.geometry),
        } for a in areas])
        result.added += len(areas)
        result.replaced.append((iso3, level))
        rows = conn.execute(select(admin_areas).where(admin_areas.c.country_iso3 == iso3,
                                                      admin_areas.c.level == level)
                            .order_by(admin_areas.c.code)).mappings().all()
        conn.execute(delete(admin_area_maps).where(admin_area_maps.c.country_iso3 == iso3,
                                                   admin_area_maps.c.level == level))
        conn.execute(insert(admin_area_maps).values(country_iso3=iso3, level=level, source_file=boundary.path,
                                                    geojson=map_geojson([dict(r) for r in rows])))
    # A new version of the file that no longer covers a country and level: its old areas go.
    gone = conn.execute(
        select(admin_areas.c.country_iso3, admin_areas.c.level).distinct()
        .where(admin_areas.c.source_file == boundary.path, admin_areas.c.checksum != boundary.checksum)
    ).all()
    for iso3, level in gone:
        if (iso3, level) not in pairs:
            result.removed += _remove_areas(conn, iso3, level)
            conn.execute(delete(admin_area_maps).where(admin_area_maps.c.country_iso3 == iso3,
                                                       admin_area_maps.c.level == level))
    if result.replaced or result.removed:
        mark_changed(conn)
    return result


@dataclass
class AddResult:
    boundary: BoundaryFile
    stored: StoreResult
    assignment: dict[str, Any]


def add_boundaries(engine: Engine, path: str | Path, **options: Any) -> AddResult:
    """Read, validate and store a boundary file, then place the stored rows (one transaction).

    ``options`` are ``read_boundaries``'s (country, level, code_field, name_field, country_field, layer).
    """
    boundary = read_boundaries(path, **options)
    with engine.begin() as conn:
        lock_for_writes(conn)
        ensure_tables(conn)
        stored = store_boundaries(conn, boundary)
        assignment = assign_places(conn)
    return AddResult(boundary, stored, assignment)


def list_boundaries(engine: Engine) -> list[dict[str, Any]]:
    """One entry per stored country and level: areas, rows placed in them, source file, when added."""
    with engine.begin() as conn:
        ensure_tables(conn)
        placed = {
            (r.country_iso3, r.level): r.placed
            for r in conn.execute(
                select(admin_areas.c.country_iso3, admin_areas.c.level,
                       text("count(allocation_areas.row_id) AS placed"))
                .select_from(allocation_areas.join(admin_areas,
                                                   admin_areas.c.area_id == allocation_areas.c.area_id))
                .group_by(admin_areas.c.country_iso3, admin_areas.c.level))
        }
        rows = conn.execute(
            select(admin_areas.c.country_iso3, admin_areas.c.level, admin_areas.c.source_file,
                   text("count(*) AS areas"), text("max(added_at) AS added_at"))
            .group_by(admin_areas.c.country_iso3, admin_areas.c.level, admin_areas.c.source_file)
            .order_by(admin_areas.c.country_iso3, admin_areas.c.level)
        ).all()
    return [{"country_iso3": r.country_iso3, "level": r.level, "areas": r.areas, "source_file": r.source_file,
             "added_at": r.added_at, "rows_placed": placed.get((r.country_iso3, r.level), 0)} for r in rows]


# --- placing rows -------------------------------------------------------------------------------


def _areas_frame(conn: Connection):
    import pandas as pd
    import shapely

    frame = pd.DataFrame(conn.execute(select(
        admin_areas.c.area_id, admin_areas.c.country_iso3, admin_areas.c.level, admin_areas.c.code,
        admin_areas.c.name, admin_areas.c.alt_names, admin_areas.c.geometry_wkb)).mappings().all(),
        columns=["area_id", "country_iso3", "level", "code", "name", "alt_names", "geometry_wkb"])
    frame["geometry"] = shapely.from_wkb(frame["geometry_wkb"].to_numpy()) if len(frame) else []
    return frame.drop(columns="geometry_wkb")


_POINT_CANDIDATES = """
SELECT a.row_id, a.lat, a.lon, a.country_iso3, l.area_id, l.method
FROM allocations a LEFT JOIN allocation_areas l ON l.row_id = a.row_id AND l.level = :level
WHERE a.geo_level = 'point' AND a.lat IS NOT NULL AND a.lon IS NOT NULL AND (
  (l.row_id IS NULL {unset}
   AND (a.country_iso3 IS NULL OR a.country_iso3 IN (SELECT country_iso3 FROM admin_areas WHERE level = :level)))
  OR (l.method IN ('point', 'nearest') AND NOT EXISTS (SELECT 1 FROM admin_areas z WHERE z.area_id = l.area_id)))
"""


def spatial_join(lon, lat, row_countries, areas):
    """For each point (arrays ``lon``, ``lat``), the position in ``areas`` (a frame with ``geometry``
    and ``country_iso3``) of the area of the point's country (any country where that is None or '')
    that contains it, else the nearest within ``NEAREST_DEGREES``; -1 where there is none. Returns
    (positions, methods) as arrays, method ``point`` or ``nearest`` (None where unplaced)."""
    import numpy as np
    import pandas as pd
    import shapely

    n = len(lon)
    found = np.full(n, -1, dtype=np.int64)
    methods = np.full(n, None, dtype=object)
    if n == 0 or len(areas) == 0:
        return found, methods
    geoms = areas["geometry"].to_numpy()
    shapely.prepare(geoms)
    tree = shapely.STRtree(geoms)
    points = shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    countries = np.asarray([c or "" for c in row_countries], dtype=object)
    area_countries = areas["country_iso3"].to_numpy(dtype=object)

    def best(pairs, rank, method: str) -> None:
        same = (countries[pairs[0]] == "") | (countries[pairs[0]] == area_countries[pairs[1]])
        hits = pd.DataFrame({"row": pairs[0][same], "area": pairs[1][same], "rank": np.asarray(rank)[same]})
        hits = hits.sort_values(["row", "rank"], kind="stable").drop_duplicates("row")
        found[hits["row"].to_numpy()] = hits["area"].to_numpy()
        methods[hits["row"].to_numpy()] = method

    inside = tree.query(points, predicate="within")
    best(inside, shapely.area(geoms)[inside[1]], "point")  # overlapping areas: the smallest holds the point
    left = np.flatnonzero(found < 0)
    if len(left):
        near = tree.query(points[left], predicate="dwithin", distance=NEAREST_DEGREES)
        near = np.vstack([left[near[0]], near[1]])
        best(near, shapely.distance(points[near[0]], geoms[near[1]]), "nearest")
    return found, methods


def _assign_points(conn: Connection, areas, level: int) -> dict[str, int]:
    """Link point rows to the level's areas (and, at level 1, fill their admin-1 code and name)."""
    import numpy as np

    unset = "AND a.admin1_pcode IS NULL AND a.admin1_name IS NULL" if level == 1 else ""
    rows = conn.execute(text(_POINT_CANDIDATES.format(unset=unset)), {"level": level}).all()
    row_id, lat, lon, country, area_id, _ = (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 6
    level_areas = areas[areas["level"] == level].reset_index(drop=True)
    found, methods = spatial_join(lon, lat, country, level_areas)
    row_id = np.asarray(row_id, dtype=np.int64)
    placed = found >= 0
    linked = np.asarray([a is not None for a in area_id], dtype=bool)  # a point link whose area was replaced
    ids, codes, names = (level_areas[c].to_numpy(dtype=object) for c in ("area_id", "code", "name"))
    gone = [(r, level) for r in row_id[linked].tolist()]
    new = list(zip(row_id[placed].tolist(), [level] * int(placed.sum()), ids[found[placed]].tolist(),
                   methods[placed].tolist(), strict=True))
    refill = placed | linked
    fills = list(zip(
        [codes[f] if f >= 0 else None for f in found[refill].tolist()],
        [names[f] if f >= 0 else None for f in found[refill].tolist()],  # None: no area holds it any more
        row_id[refill].tolist(), strict=True))
    _executemany(conn, "DELETE FROM allocation_areas WHERE row_id = ? AND level = ?", gone)
    _executemany(conn, "INSERT INTO allocation_areas (row_id, level, area_id, method) VALUES (?, ?, ?, ?)", new)
    if level == 1:
        _fill_admin1(conn, fills)
    return {"placed": int(placed.sum()), "unplaced": int((~placed).sum()), "changed": len(gone) + len(new)}


def _fill_admin1(conn: Connection, fills: list[tuple]) -> None:
    """Set (admin1_pcode, admin1_name) of row_id for each (code, name, row_id)."""
    if not fills:
        return
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        # Unchanged values are not written: a new version of the same areas rewrites no row.
        _executemany(conn, "UPDATE allocations SET admin1_pcode = ?, admin1_name = ? WHERE row_id = ? "
                     "AND (admin1_pcode IS NOT ? OR admin1_name IS NOT ?)",
                     [(code, name, row_id, code, name) for code, name, row_id in fills])
        return
    # PostgreSQL: one UPDATE from a copied temporary table, not a statement per row.
    conn.exec_driver_sql("CREATE TEMP TABLE fundatlas_admin1_fills (code text, name text, row_id bigint) "
                         "ON COMMIT DROP")
    with conn.connection.dbapi_connection.cursor() as cursor:  # the transaction's own connection
        with cursor.copy("COPY fundatlas_admin1_fills (code, name, row_id) FROM STDIN") as copy:
            for row in fills:
                copy.write_row(row)
    conn.exec_driver_sql("UPDATE allocations a SET admin1_pcode = f.code, admin1_name = f.name "
                         "FROM fundatlas_admin1_fills f WHERE a.row_id = f.row_id "
                         "AND (a.admin1_pcode IS DISTINCT FROM f.code OR a.admin1_name IS DISTINCT FROM f.name)")
    conn.exec_driver_sql("DROP TABLE fundatlas_admin1_fills")


def _executemany(conn: Connection, sql: str, rows: list[tuple], batch: int = 50_000) -> None:
    """Run ``sql`` (``?`` placeholders) for each row through the driver: SQLAlchemy's per-row
    parameter processing costs more than the statements themselves at a million rows."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    for start in range(0, len(rows), batch):
        conn.exec_driver_sql(sql, rows[start:start + batch])


_NAMED_KEYS = """
SELECT COALESCE(a.country_iso3, '') AS country_iso3, COALESCE(a.admin1_pcode, '') AS code,
       COALESCE(a.admin1_name, '') AS name, count(*) AS n
FROM allocations a
WHERE (a.admin1_pcode IS NOT NULL OR a.admin1_name IS NOT NULL)
  AND a.country_iso3 IN (SELECT country_iso3 FROM admin_areas WHERE level = 1)
  AND NOT EXISTS (SELECT 1 FROM allocation_areas l WHERE l.row_id = a.row_id AND l.level = 1
                  AND l.method IN ('point', 'nearest'))
GROUP BY COALESCE(a.country_iso3, ''), COALESCE(a.admin1_pcode, ''), COALESCE(a.admin1_name, '')
"""

# Rows join their (country, code, name) key in place_matches; missing values are ''.
# NOT IN over the wanted links (a hashed set on PostgreSQL), not a correlated NOT EXISTS: PostgreSQL
# planned the latter as a nested loop and took minutes at 100,000 links.
_STALE_NAME_LINKS = """
DELETE FROM allocation_areas WHERE level = 1 AND method IN ('code', 'name', 'fuzzy')
  AND (row_id, area_id, method) NOT IN (
    SELECT a.row_id, m.area_id, m.method FROM allocations a JOIN place_matches m
      ON m.level = 1 AND m.country_iso3 = COALESCE(a.country_iso3, '')
      AND m.source_code = COALESCE(a.admin1_pcode, '') AND m.source_name = COALESCE(a.admin1_name, '')
    WHERE m.area_id IS NOT NULL)
"""

_NEW_NAME_LINKS = """
INSERT INTO allocation_areas (row_id, level, area_id, method)
SELECT a.row_id, 1, m.area_id, m.method FROM allocations a JOIN place_matches m
    ON m.level = 1 AND m.country_iso3 = COALESCE(a.country_iso3, '')
  AND m.source_code = COALESCE(a.admin1_pcode, '') AND m.source_name = COALESCE(a.admin1_name, '')
WHERE m.area_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM allocation_areas l WHERE l.row_id = a.row_id AND l.level = 1)
"""


def _match_names(conn: Connection, areas, threshold: float) -> int:
    """Match each distinct admin-1 (country, code, name) the sources give; sync ``place_matches``
    and the rows' links. Returns how many table rows changed."""
    level_areas = areas[areas["level"] == 1]
    indexes = {
        iso3: placematch.build_index([
            placematch.Candidate(int(a.area_id), a.code, a["name"] or "",
                                 tuple((_cell(a.alt_names) or "").split("|")) if _cell(a.alt_names) else ())
            for _, a in group.iterrows()])
        for iso3, group in level_areas.groupby("country_iso3")
    }
    wanted: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key in conn.execute(text(_NAMED_KEYS)).all():
        match = placematch.match_place(indexes[key.country_iso3], key.code or None, key.name or None, threshold)
        wanted[(key.country_iso3, key.code, key.name)] = {
            "country_iso3": key.country_iso3, "level": 1, "source_code": key.code, "source_name": key.name,
            "area_id": match.candidate.key if match.candidate else None, "method": match.method,
            "score": match.score, "rows": int(key.n), "reason": match.reason, "nearest": match.nearest,
        }
    compared = [c for c in place_matches.c if c.name != "match_id"]
    have = {(r.country_iso3, r.source_code, r.source_name): dict(r)
            for r in conn.execute(select(*compared).where(place_matches.c.level == 1)).mappings()}
    changed = 0
    for key in have.keys() - wanted.keys():
        changed += conn.execute(delete(place_matches).where(
            place_matches.c.level == 1, place_matches.c.country_iso3 == key[0],
            place_matches.c.source_code == key[1], place_matches.c.source_name == key[2])).rowcount
    for key, row in wanted.items():
        if have.get(key) == row:
            continue
        if key in have:
            conn.execute(delete(place_matches).where(
                place_matches.c.level == 1, place_matches.c.country_iso3 == key[0],
                place_matches.c.source_code == key[1], place_matches.c.source_name == key[2]))
        conn.execute(insert(place_matches).values(**row))
        changed += 1
    changed += conn.execute(text(_STALE_NAME_LINKS)).rowcount
    changed += conn.execute(text(_NEW_NAME_LINKS)).rowcount
    return changed


def unmatched_places(conn: Connection) -> list[dict[str, Any]]:
    """Source place names and codes no area matched (countries with boundaries only), most rows first."""
    rows = conn.execute(select(place_matches).where(place_matches.c.area_id.is_(None))
                        .order_by(place_matches.c.rows.desc(), place_matches.c.country_iso3,
                                  place_matches.c.source_name)).mappings().all()
    return [{"country_iso3": r["country_iso3"], "level": r["level"], "code": r["source_code"] or None,
             "name": r["source_name"] or None, "rows": r["rows"], "reason": r["reason"], "nearest": r["nearest"]}
            for r in rows]


def assign_places(conn: Connection, threshold: float = placematch.DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Place stored rows in the stored admin areas (see the module docstring); run it in the caller's
    transaction after a load or a boundary change. Idempotent: a second run changes nothing."""
    ensure_tables(conn)
    # Rows deleted or replaced by a load take their links with them.
    changed = conn.execute(text(
        "DELETE FROM allocation_areas WHERE NOT EXISTS "
        "(SELECT 1 FROM allocations a WHERE a.row_id = allocation_areas.row_id)")).rowcount
    areas = _areas_frame(conn)
    points = {"placed": 0, "unplaced": 0}
    linked_levels = set(conn.execute(select(allocation_areas.c.level).distinct()).scalars())
    for level in (1, 2):
        if not (areas["level"] == level).any() and level not in linked_levels:
            continue  # nothing to place in, nothing to undo: skip a scan of the rows
        counts = _assign_points(conn, areas, level)
        changed += counts.pop("changed")
        if level == 1:
            points = counts
    if conn.dialect.name == "postgresql" and changed > 10_000:
        conn.exec_driver_sql("ANALYZE allocation_areas")  # plan the name-link joins on current counts
    changed += _match_names(conn, areas, threshold)
    if changed:
        mark_changed(conn)
    by_method = {
        (r.level, r.method): r.n for r in conn.execute(text(
            "SELECT level, method, count(*) AS n FROM allocation_areas GROUP BY level, method"))
    }
    unmatched = unmatched_places(conn)
    return {
        "areas": len(areas),
        "points_placed": points["placed"],  # this run's newly placed points
        "points_outside": points["unplaced"],  # points this run found in no area
        "rows_by_method": {f"admin{level} {method}": n for (level, method), n in sorted(by_method.items())},
        "unmatched": unmatched,
        "unmatched_rows": sum(u["rows"] for u in unmatched),
        "changed": changed,
    }
