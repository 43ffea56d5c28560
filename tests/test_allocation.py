"""Allocation: shares sum to 1, amounts sum to the record's amount, points go to their country."""

from __future__ import annotations

import math

import pytest

from data_sources.allocation import allocate, normalised_shares
from data_sources.records import Place, SectorShare, SourceRecord


def _record(**kwargs) -> SourceRecord:
    base = dict(source="iati", record_id="X-1#t0", flow_type="disbursement", amount=1000.0, currency="USD",
                year=2020)
    base.update(kwargs)
    return SourceRecord(**base)


def _no_geo(_value):
    return None


def test_percentages_split_places_and_sectors():
    record = _record(
        places=[Place(share=0.6, country="KE"), Place(share=0.4, country="UG")],
        sectors=[SectorShare(share=0.5, code="14030"), SectorShare(share=0.5, code="12220")],
    )
    rows = allocate(record, to_iso3=lambda c: c, country_of_point=lambda lat, lon: None)
    assert [round(r.share, 6) for r in rows] == [0.3, 0.3, 0.2, 0.2]
    assert [r.alloc for r in rows] == [0, 1, 2, 3]
    assert math.isclose(sum(r.share for r in rows), 1.0)
    assert sum(r.amount for r in rows) == pytest.approx(1000.0, abs=1e-9)
    assert rows[0].place.country == "KE" and rows[1].sector.code == "12220"


def test_percentages_that_do_not_sum_to_100_are_normalised():
    assert normalised_shares([0.5, 0.25]) == pytest.approx([2 / 3, 1 / 3])


def test_missing_percentage_means_even_split():
    assert normalised_shares([0.7, None, 0.1]) == pytest.approx([1 / 3] * 3)
    assert normalised_shares([0, 0]) == pytest.approx([0.5, 0.5])


def test_zero_percentage_place_gets_no_row():
    record = _record(places=[Place(share=1.0, country="KE"), Place(share=0.0, country="UG")])
    rows = allocate(record, to_iso3=lambda c: c, country_of_point=lambda lat, lon: None)
    assert [r.place.country for r in rows] == ["KE"]
    assert rows[0].share == 1.0 and rows[0].amount == 1000.0


def test_no_place_and_no_sector_is_one_unknown_row():
    rows = allocate(_record(), to_iso3=_no_geo, country_of_point=lambda lat, lon: None)
    assert len(rows) == 1 and rows[0].share == 1.0 and rows[0].place.country is None


def test_points_are_placed_in_their_country_and_split_its_share():
    record = _record(
        places=[Place(share=0.5, country="SV"), Place(share=0.5, country="HN")],
        points=[(13.7, -89.2), (13.5, -88.9), (14.1, -87.2), (0.0, 0.0)],
    )
    countries = {(13.7, -89.2): "SLV", (13.5, -88.9): "SLV", (14.1, -87.2): "HND"}
    rows = allocate(record, to_iso3={"SV": "SLV", "HN": "HND"}.get,
                    country_of_point=lambda lat, lon: countries.get((lat, lon)))
    assert [(r.place.country, r.place.lat, round(r.share, 3)) for r in rows] == [
        ("SV", 13.7, 0.25), ("SV", 13.5, 0.25), ("HN", 14.1, 0.5),
    ]
    assert sum(r.amount for r in rows) == pytest.approx(1000.0)


def test_single_place_takes_every_point():
    record = _record(places=[Place(region="679")], points=[(27.7, 85.3), (23.8, 90.4)])
    rows = allocate(record, to_iso3=_no_geo, country_of_point=lambda lat, lon: None)
    assert [(r.place.region, r.place.lat) for r in rows] == [("679", 27.7), ("679", 23.8)]
    assert [r.share for r in rows] == [0.5, 0.5]


def test_amountless_record_keeps_none_amounts():
    rows = allocate(_record(amount=None, places=[Place(country="AF"), Place(country="PK")]),
                    to_iso3=lambda c: c, country_of_point=lambda lat, lon: None)
    assert [r.amount for r in rows] == [None, None]


def test_each_row_says_how_its_record_was_split():
    geo = {"to_iso3": lambda c: c, "country_of_point": lambda lat, lon: None}
    assert {r.basis for r in allocate(_record(places=[Place(country="KE")]), **geo)} == {"whole"}
    by_source = allocate(_record(places=[Place(share=0.6, country="KE"), Place(share=0.4, country="UG")]), **geo)
    assert {r.basis for r in by_source} == {"source shares"}
    even = allocate(_record(places=[Place(country="KE"), Place(country="UG")]), **geo)
    assert {r.basis for r in even} == {"even split"}
    # Source percentages for places, none for sectors: the sector split was even, so the record is flagged.
    mixed = allocate(_record(places=[Place(share=0.6, country="KE"), Place(share=0.4, country="UG")],
                             sectors=[SectorShare(code="14030"), SectorShare(code="12220")]), **geo)
    assert {r.basis for r in mixed} == {"even split"}
    points = allocate(_record(places=[Place(region="679")], points=[(27.7, 85.3), (23.8, 90.4)]),
                      to_iso3=_no_geo, country_of_point=lambda lat, lon: None)
    assert {r.basis for r in points} == {"even split"}


def test_the_split_is_stored_with_every_row(engine, tmp_path):
    from sqlalchemy import select

    from data_sources.loading import load_file
    from data_sources.store import allocations
    from tests.conftest import shared_file

    assert load_file(engine, shared_file("iati", "worldbank-sv.xml")).status == "succeeded"
    with engine.connect() as conn:
        bases = {r[0] for r in conn.execute(select(allocations.c.allocation_basis).distinct())}
    assert bases <= {"whole", "source shares", "even split"} and "even split" in bases
