"""Linked views and cross-filtering: breakdowns follow the filters; bar clicks and chips change them."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from callbacks.charts import compute_ranking_figure, compute_year_figure
from callbacks.filters import active_filters, apply_bar_click, clicked_bar_value, remove_filter
from data_sources import queries
from data_sources.filters import Filters
from data_sources.store import open_store


@pytest.fixture(scope="module")
def demo_engine(demo_store):
    return open_store(demo_store)


def test_breakdowns_add_up_to_the_headline(demo_engine):
    filters = Filters(themes=("WASH",))
    years = queries.totals_by(demo_engine, filters, "year")
    head = queries.headline(demo_engine, filters)
    assert years["usd"].sum() == pytest.approx(head.usd)
    funders = queries.totals_by(demo_engine, filters, "funder", limit=5)
    assert len(funders) == 5 and list(funders["usd"]) == sorted(funders["usd"], reverse=True)
    # Filter values are organisation identities (the demo's ids are local, so identities go by name).
    assert all(v.startswith("n:demo-") for v in funders["value"])
    assert all(label.startswith("Demo · ") for label in funders["label"])
    themes = queries.totals_by(demo_engine, Filters(), "theme", limit=20)
    assert "WASH" in set(themes["value"])
    with pytest.raises(ValueError):
        queries.totals_by(demo_engine, filters, "colour")


def test_bar_clicks_filter_and_a_second_click_clears():
    filters = Filters(themes=("Health",))
    by_funder = apply_bar_click(filters, "funder", "XX-DEMO-F001")
    assert by_funder.funders == ("XX-DEMO-F001",) and by_funder.themes == ("Health",)
    assert apply_bar_click(by_funder, "funder", "XX-DEMO-F001").funders == ()
    one_year = apply_bar_click(filters, "year", "2019")
    assert (one_year.year_from, one_year.year_to) == (2019, 2019)
    assert apply_bar_click(one_year, "year", "2019").year_from is None
    assert apply_bar_click(filters, "theme", "(no theme)") == filters
    assert apply_bar_click(filters, "year", "19; DROP") == filters


def test_click_data_must_carry_a_short_string():
    assert clicked_bar_value({"points": [{"customdata": ["XX-DEMO-F001", "Demo · X"]}]}) == "XX-DEMO-F001"
    for crafted in (None, {}, {"points": [{}]}, {"points": [{"customdata": [{"a": 1}]}]},
                    {"points": [{"customdata": ["x" * 500]}]}):
        assert clicked_bar_value(crafted) is None


def test_chips_list_and_remove_each_active_value():
    filters = Filters(countries=("KEN", "UGA"), themes=("WASH",), year_from=2018, q="wells")
    assert active_filters(filters) == [("country", "KEN"), ("country", "UGA"), ("theme", "WASH"),
                                       ("year-from", "2018"), ("q", "wells")]
    assert remove_filter(filters, "country", "KEN").countries == ("UGA",)
    assert remove_filter(filters, "year-from", "2018").year_from is None
    assert remove_filter(filters, "q", "wells").q is None
    assert remove_filter(filters, "colour", "red") == filters


def test_figures_read_in_money(demo_engine):
    years = go.Figure(compute_year_figure(queries.totals_by(demo_engine, Filters(), "year")))  # validates
    assert years.data[0].text[0].startswith("$")
    ranking = go.Figure(compute_ranking_figure(queries.totals_by(demo_engine, Filters(), "recipient", limit=10)))
    bars = ranking.data[0]
    assert len(bars.y) == 10 and all(len(label) <= 34 for label in bars.y)
    assert list(bars.x) == sorted(bars.x)  # largest on top
