"""View settings in the URL: validated, kept apart from the filters, and written back beside them."""

from __future__ import annotations

import pytest

from callbacks.filters import parse_search, parse_view, search_for, with_view
from data_sources.filters import Filters
from data_sources.view import View, ViewError


def test_view_and_filters_share_the_url_without_mixing():
    search = "?theme=WASH&country=KEN&currency=gbp&metric=records&scale=quantile&drill=KEN"
    filters, error = parse_search(search)
    assert error is None and filters == Filters(themes=("WASH",), countries=("KEN",))
    assert parse_view(search) == View(currency="GBP", metric="records", scale="quantile", drill="KEN")
    rebuilt = search_for(filters, parse_view(search))
    assert parse_search(rebuilt)[0] == filters and parse_view(rebuilt) == parse_view(search)
    assert search_for(Filters(), View()) == ""  # the defaults leave the URL bare


@pytest.mark.parametrize("query", ["currency=JPY", "metric=profit", "scale=linear'", "drill=ke", "drill=KENYA",
                                   "currency=USD&currency=GBP"])
def test_crafted_view_settings_are_refused(query):
    with pytest.raises(ViewError):
        View.from_query_string(query)
    assert parse_view("?" + query) == View()  # the page still shows, with the defaults


def test_currency_control_writes_the_url_and_keeps_the_filters():
    new = with_view("?theme=WASH", currency="EUR")
    assert parse_view(new).currency == "EUR" and parse_search(new)[0] == Filters(themes=("WASH",))
    assert with_view(new, currency="EUR") is None  # nothing changes
    assert with_view("?theme=WASH", currency={"x": 1}) is None and with_view("", currency="XAU") is None
    assert with_view("", currency=None) is None and with_view("", nonsense="x") is None


def test_choosing_one_country_with_provinces_in_the_dropdown_drills_in():
    from callbacks.filters import drill_for_country_choice

    provinces = frozenset({"AFG"})
    assert drill_for_country_choice(Filters(countries=("AFG",)), View(), provinces).drill == "AFG"
    assert drill_for_country_choice(Filters(countries=("KEN",)), View(), provinces).drill is None
    assert drill_for_country_choice(Filters(countries=("AFG", "KEN")), View(), provinces).drill is None
    assert drill_for_country_choice(Filters(countries=("AFG",)), View(basis="based"), provinces).drill is None
