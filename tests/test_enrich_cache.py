"""Enrichment's cached place columns give what the rules give, for every place, cached or not."""

from __future__ import annotations

import math

from data_sources import enrich, geography
from data_sources.records import Place, SourceRecord


def _expected(place: Place) -> tuple[object, ...]:
    """The place columns by the documented rules, computed here without enrich's caches."""
    iso3 = geography.to_iso3(place.country) if place.country else None
    region = geography.region_name(str(place.region)) if iso3 is None and place.region else None
    name = geography.country_name(iso3) if iso3 else None
    pcode = str(place.admin1_pcode).strip() or None if place.admin1_pcode is not None else None
    admin1 = str(place.admin1_name).strip() or None if place.admin1_name is not None else None
    lat, lon = place.lat, place.lon
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        return iso3, name, region, pcode, admin1, lat, lon, "point"
    if place.admin1_pcode:
        return iso3, name, region, pcode, admin1, None, None, "admin1"
    if iso3:
        point = geography.representative_point(iso3)
        return iso3, name, region, pcode, admin1, *(point or (None, None)), "country"
    return iso3, name, region, pcode, admin1, None, None, "region" if region else "unknown"


PLACES = [
    Place(country="KE"), Place(country="Kenya", admin1_name=" Nairobi "), Place(country="KEN", admin1_pcode="KE047"),
    Place(region="589"), Place(region="298"), Place(), Place(country="Atlantis"),
    Place(country="KE", lat=0.0, lon=37.0), Place(country="KE", lat=-0.0, lon=37.0),  # equal keys, other signs
    Place(country="KE", lat=1, lon=37), Place(country="KE", lat=1.0, lon=37.0),  # equal keys, other types
    Place(country="KE", lat=95.0, lon=37.0), Place(country="UG", lat=None, lon=32.5),
    Place(country="KE", admin1_pcode=0.0), Place(country="KE", admin1_pcode=-0.0),  # not text: uncached
    Place(country="KE", admin1_name=True), Place(country="KE", admin1_name=1),
]


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(
        type(x) is type(y) and x == y and (not isinstance(x, float) or math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True)
    )


def test_place_columns_follow_the_rules_in_any_order() -> None:
    for order in (PLACES, PLACES[::-1], PLACES + PLACES):
        enrich._area_values.cache_clear()
        for place in order:
            found = enrich._place_values(place)
            assert _same(found, _expected(place)), (place, found, _expected(place))


def test_a_record_keeps_the_sign_and_type_of_its_point() -> None:
    rows = []
    for lat in (0.0, -0.0, 1, 1.0):
        record = SourceRecord("iati", f"r{lat!r}", "commitment", 10.0, "USD", 2020,
                              places=[Place(country="KE", lat=lat, lon=37.0)])
        rows.extend(enrich.canonical_rows(record, "x", 1))
    assert [(type(r["lat"]), math.copysign(1, r["lat"])) for r in rows] == [
        (float, 1.0), (float, -1.0), (int, 1.0), (float, 1.0)]
    assert {r["geo_level"] for r in rows} == {"point"}


def test_sector_columns_of_equal_names_of_other_types() -> None:
    from data_sources import themes
    from data_sources.records import SectorShare

    names = ["Basic health", " Basic health ", None, "", 0.0, -0.0, 1, True]
    for name in names + names[::-1]:
        record = SourceRecord("iati", "r", "commitment", 10.0, "USD", 2020,
                              sectors=[SectorShare(code="12220", name=name)])
        (row,) = enrich.canonical_rows(record, "x", 1)
        category, theme = themes.dac_category("12220")
        own = str(name).strip() or None if name is not None else None
        assert (row["sector_code"], row["sector_name"], row["theme"]) == ("12220", own or category, theme)
