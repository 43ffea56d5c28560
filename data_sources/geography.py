"""Countries: codes and names to ISO3, names, points, point-in-country, DAC regions, map shapes.

Everything is loaded lazily on first use (importing this module reads no file):

* codes and names come from ``country_converter`` (coco)'s country table and regular
  expressions, loaded once; results are memoised per input value because coco is slow per call;
* shapes come from ``assets/countries.geojson`` (Natural Earth 50m admin-0, simplified; rebuilt
  by ``python -m data_sources.vendor_boundaries``), parsed once into shapely geometries and an
  STRtree.

Kosovo is ``XKX``: not an ISO 3166 code but the user-assigned code the World Bank, the EU and
IATI (as ``XK``) use; ``to_iso3("Kosovo")``, ``to_iso3("XK")`` and points in Kosovo give it.

``to_iso3`` never guesses: regional or multi-country names ("South of Sahara, regional",
"Africa", "Sudan and South Sudan", "Gulf of Guinea") give None. Numbers are ISO 3166 numeric
codes, never DAC/CRS recipient or region codes (DAC region 380 is not Italy's 380): pass IATI
recipient-region codes to ``region_name`` instead.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Collection
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

COUNTRIES_GEOJSON = Path(__file__).resolve().parents[1] / "assets" / "countries.geojson"

# OECD DAC / IATI recipient region codes (IATI Region vocabulary 1).
DAC_REGIONS: dict[str, str] = {
    "88": "States Ex-Yugoslavia unspecified",
    "89": "Europe, regional",
    "189": "North of Sahara, regional",
    "289": "South of Sahara, regional",
    "298": "Africa, regional",
    "380": "West Indies, regional",
    "389": "North & Central America, regional",
    "489": "South America, regional",
    "498": "America, regional",
    "589": "Middle East, regional",
    "619": "Central Asia, regional",
    "679": "South Asia, regional",
    "689": "South & Central Asia, regional",
    "789": "Far East Asia, regional",
    "798": "Asia, regional",
    "889": "Oceania, regional",
    "998": "Developing countries, unspecified",
    "1027": "Eastern Africa, regional",
    "1028": "Middle Africa, regional",
    "1029": "Southern Africa, regional",
    "1030": "Western Africa, regional",
    "1031": "Caribbean, regional",
    "1032": "Central America, regional",
    "1033": "Melanesia, regional",
    "1034": "Micronesia, regional",
    "1035": "Polynesia, regional",
}

# Names coco does not resolve (or resolves to something else) that are unambiguous.
_ALIASES: dict[str, str] = {
    "scotland": "GBR",
    "wales": "GBR",
    "northern ireland": "GBR",
    "great britain": "GBR",
    "holland": "NLD",
    "kosovo": "XKX",
}
# Codes outside coco's ISO2 column that data sources use (IATI's Kosovo).
_ISO2_ALIASES = {"XK": "XKX"}

# Words that mark a place larger or other than one country: such text gives None, even where a
# country name occurs inside it ("Southern Africa", "Gulf of Guinea", "Niger Delta").
_NOT_A_COUNTRY = re.compile(
    r"\b(regional|unspecified|unallocated|global|worldwide|multi-?country|countries|"
    r"southern africa|sub-?saharan|sahel|horn of africa|great lakes|gulf|lake|basin|delta|"
    r"river|sea|european union)\b",
    re.IGNORECASE,
)
# Several places in one text; each part is resolved and distinct countries mean None.
_SEVERAL = re.compile(r"\s+(?:and|&)\s+|\s*/\s*|\s*;\s*", re.IGNORECASE)

# Points for countries with no polygon in the vendored 50m boundaries (too small for it):
# seat of government, (lat, lon) rounded to 0.01 degree. Funafuti from Natural Earth populated
# places; Gibraltar, Fakaofo (Tokelau) and Vatican City from their well-known positions.
_FALLBACK_POINTS: dict[str, tuple[float, float]] = {
    "TUV": (-8.52, 179.22),
    "TKL": (-9.37, -171.22),
    "GIB": (36.14, -5.35),
    "VAT": (41.9, 12.45),  # too small for the 50m data; inside Rome's ITA polygon
}


# --- codes and names --------------------------------------------------------------------------


@cache
def _coco():
    """coco's converter over its own table, read so that Namibia's "NA" stays a string.

    (country_converter 1.3.2 with pandas 3 reads "NA" as missing and fails to start.)
    """
    import country_converter
    import pandas as pd

    # coco logs a warning for every name it does not find; that is expected here.
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    table = pd.read_csv(
        country_converter.country_converter.COUNTRY_DATA_FILE,
        sep="\t",
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding="utf-8",
    )
    return country_converter.CountryConverter(country_data=table)


@cache
def _tables() -> tuple[dict[str, str], dict[str, str], dict[int, str], dict[str, str]]:
    """(ISO2 -> ISO3, ISO3 -> ISO3, numeric -> ISO3, ISO3 -> short name) from coco's table."""
    data = _coco().data
    iso2, iso3, numeric, names = {}, {}, {}, {}
    for row in data[["ISO2", "ISO3", "ISOnumeric", "name_short"]].itertuples(index=False):
        code = str(row.ISO3).upper()
        iso3[code] = code
        names[code] = row.name_short
        # coco's ISO2 column holds regexes for a few countries ("^GR$|^EL$", "^GB$|^UK$").
        for alt in str(row.ISO2 or "").split("|"):
            alt = alt.strip("^$ ").upper()
            if re.fullmatch(r"[A-Z]{2}", alt):
                iso2[alt] = code
        if isinstance(row.ISOnumeric, str) and row.ISOnumeric.isdigit():
            numeric[int(row.ISOnumeric)] = code
    iso2.update(_ISO2_ALIASES)
    return iso2, iso3, numeric, names


def _from_numeric(number: int) -> str | None:
    return _tables()[2].get(number) if number > 0 else None


# What ``CountryConverter.convert(text, src="regex", to="ISO3")`` does for one name, without its
# per-call set-up (a few milliseconds, paid for every distinct place name of a file): the text up
# to an exclusion word ("excluding", "without", "w/o"), searched with each country's expression.
_COCO_EXCLUDE = re.compile("excl\\w.*|without|w/o")


@cache
def _coco_regexes() -> tuple[tuple[re.Pattern[str], str], ...]:
    coco = _coco()
    return tuple(
        (regex, "".join(c for c in str(iso3).split("|")[0] if c.isalnum()).upper())
        for regex, iso3 in zip(coco.regexes, coco.data["ISO3"], strict=True)
    )


def _regex_match(text: str) -> str | None:
    """The one country coco's regular expressions find in ``text``; None if none or several."""
    name = _COCO_EXCLUDE.split(text)[0]
    found = [iso3 for regex, iso3 in _coco_regexes() if regex.search(name)]
    if len(found) != 1:
        return None
    return found[0] if found[0] in _tables()[1] else None


# Big enough for every distinct place name of a large file (a miss costs country_converter's
# regular expressions, over a millisecond): 4,096 thrashed on 360Giving's admin-1 names.
@lru_cache(maxsize=65536)
def _text_to_iso3(text: str) -> str | None:
    text = " ".join(text.split())
    if not text:
        return None
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return _from_numeric(int(float(text)))
    iso2, iso3, _, _ = _tables()
    upper = text.upper()
    if len(text) == 2 and upper in iso2:
        return iso2[upper]
    if len(text) == 3 and upper in iso3:
        return upper
    if _NOT_A_COUNTRY.search(text):
        return None
    folded = text.casefold()
    if folded in _ALIASES:
        return _ALIASES[folded]
    parts = [p for p in _SEVERAL.split(text) if p.strip()]
    if len(parts) > 1:
        # "Trinidad and Tobago" is one country, "Sudan and South Sudan" two.
        each = {_ALIASES.get(p.casefold()) or _regex_match(p) for p in parts} - {None}
        if len(each) > 1:
            return None
    return _regex_match(text)


def to_iso3(value: str | int | None) -> str | None:
    """ISO 3166-1 alpha-3 code for an ISO3, ISO2 or numeric code or a country name; else None.

    Regional and multi-country names, empty text and "-99" give None rather than a guess.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int):
        return _from_numeric(value)
    text = str(value).strip()
    # Name matching costs time quadratic in the length (20,000 characters took 50 s) and long digit
    # runs overflow the numeric path: no country's name or code is that long.
    if len(text) > MAX_NAME_CHARS or (len(text) > 12 and text.isdigit()):
        return None
    return _text_to_iso3(text)


MAX_NAME_CHARS = 200


def country_name(iso3: str) -> str | None:
    """Short English name of a country ("DR Congo", "Palestine"), or None for unknown codes."""
    if not iso3:
        return None
    return _tables()[3].get(str(iso3).strip().upper())


def region_name(code: str) -> str:
    """Name of an OECD DAC / IATI (vocabulary 1) recipient region code; other input unchanged."""
    text = str(code).strip()
    key = text[:-2] if re.fullmatch(r"\d+\.0", text) else text
    return DAC_REGIONS.get(key, text)


# --- shapes -----------------------------------------------------------------------------------


@cache
def load_countries_geojson() -> dict[str, Any]:
    """The vendored FeatureCollection (id = ISO3; properties iso3, name). Shared: do not mutate."""
    return json.loads(COUNTRIES_GEOJSON.read_text(encoding="utf-8"))


@cache
def _shapes() -> dict[str, Any]:
    from shapely.geometry import shape

    return {f["id"]: shape(f["geometry"]) for f in load_countries_geojson()["features"]}


@cache
def _tree():
    from shapely import STRtree

    codes = sorted(_shapes())
    geoms = [_shapes()[c] for c in codes]
    return STRtree(geoms), codes, [g.area for g in geoms]


@lru_cache(maxsize=512)
def representative_point(iso3: str) -> tuple[float, float] | None:
    """(lat, lon) of a point inside the country: in its largest polygon, so France gives a point
    in metropolitan France, not an overseas island; a seat-of-government point for the few atoll
    countries without a polygon; None when nothing is known."""
    if not iso3:
        return None
    code = str(iso3).strip().upper()
    geom = _shapes().get(code)
    if geom is None:
        return _FALLBACK_POINTS.get(code)
    largest = max(getattr(geom, "geoms", [geom]), key=lambda g: g.area)
    point = largest.representative_point()
    return (round(point.y, 4), round(point.x, 4))


def country_of_point(
    lat: float,
    lon: float,
    tolerance: float = 0.05,
    prefer: Collection[str] = (),
    prefer_within: float = 0.2,
) -> str | None:
    """ISO3 of the country containing (lat, lon), or None at sea.

    A point within ``tolerance`` degrees (about 5 km) of one country's coast counts as in it:
    the vendored coastlines are simplified by about 4 km, and coastal towns must not fall into
    the sea. ``prefer``: countries the caller expects (the record's recipient countries); a
    point within ``prefer_within`` degrees (about 20 km) of one of them is given to the nearest
    such one, because at this map scale a border town can fall a few km on the wrong side of a
    border and small coastal islands are missing.
    """
    import shapely

    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    point = shapely.Point(lon, lat)
    shapes = _shapes()
    near = []
    for code in {str(c).strip().upper() for c in prefer if c}:
        geom = shapes.get(code)
        if geom is not None and shapely.dwithin(geom, point, prefer_within):
            near.append((geom.distance(point), code))
    if near:
        return min(near)[1]  # inside one (distance 0), else the nearest expected country
    tree, codes, areas = _tree()
    hits = tree.query(point, predicate="intersects")
    if not len(hits) and tolerance > 0:
        hits = tree.query_nearest(point, max_distance=tolerance)
    if not len(hits):
        return None
    # Several hits: a point on a border, or a micro-state that the simplified outline of its
    # neighbour overlaps (Monaco in France, Macau in China): the smaller country is the answer.
    return codes[min(hits, key=lambda i: (areas[i], i))]
