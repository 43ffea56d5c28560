"""Filters: one vocabulary for the CLI, the URL and exports; outside input is validated."""

from __future__ import annotations

import pytest

from data_sources.cli import build_parser, filters_from_args
from data_sources.filters import MAX_VALUES, FilterError, Filters


def test_query_string_round_trip():
    filters = Filters(countries=("KEN", "UGA"), funders=("XX-DEMO-F001",), themes=("WASH",), year_from=2018,
                      year_to=2022, min_usd=1000.0, q="wells", sources=("iati",), flow_types=("commitment",))
    assert Filters.from_query_string(filters.to_query_string()) == filters
    assert Filters.from_query_string("?" + filters.to_query_string()) == filters


def test_cli_and_url_give_the_same_filters():
    args = build_parser().parse_args([
        "export", "--country", "KEN", "--country", "UGA", "--funder", "XX-DEMO-F001", "--theme", "WASH",
        "--year-from", "2018", "--year-to", "2022", "--min-usd", "1000", "--q", "wells",
    ])
    url = Filters.from_query_string(
        "country=KEN&country=UGA&funder=XX-DEMO-F001&theme=WASH&year-from=2018&year-to=2022&min-usd=1000&q=wells"
    )
    assert filters_from_args(args) == url


@pytest.mark.parametrize("query, message", [
    ("country=kenya", "alpha-3"),
    ("year-from=abc", "not a year"),
    ("year-to=3000", "outside"),
    ("source=bogus", "unknown"),
    ("flow-type=loan", "unknown"),
    ("min-usd=nan", "finite"),
    ("colour=red", "unknown filter"),
    ("q=" + "x" * 500, "longer than"),
    ("&".join(f"funder=f{i}" for i in range(MAX_VALUES + 1)), "at most"),
    ("year-from=2000&year-from=2001", "one value"),
])
def test_crafted_values_are_refused_with_a_clear_error(query, message):
    with pytest.raises(FilterError, match=message):
        Filters.from_query_string(query)


def test_empty_values_are_dropped():
    assert Filters.from_query_string("country=&q=") == Filters()
    assert Filters().is_empty()


def test_a_party_value_matches_its_identity_its_raw_id_or_its_raw_name():
    from sqlalchemy import literal_column

    from data_sources.store import allocations

    asked = []

    def identity_match(role, values):
        asked.append((role, values))
        return literal_column(f"{role}_is_identity")

    filters = Filters(funders=("GB-CHC-1",), recipients=("n:x", "Y"))
    sql = str(filters.where(allocations, identity_match).compile(compile_kwargs={"literal_binds": True}))
    assert asked == [("funder", ("GB-CHC-1",)), ("recipient", ("n:x", "Y"))]
    assert ("allocations.funder_id IN ('GB-CHC-1') OR allocations.funder_name IN ('GB-CHC-1') "
            "OR funder_is_identity") in sql
    assert "OR recipient_is_identity" in sql
    # without identities (the pass never ran) the raw rule alone, as before
    raw = str(filters.where(allocations).compile(compile_kwargs={"literal_binds": True}))
    assert "is_identity" not in raw and "allocations.recipient_name IN ('n:x', 'Y')" in raw
