"""The map's place basis: where the money is spent (default) or where the recipient is based
(``View.basis``, ``basis=based`` in the URL), through the URL, the control and the map panel."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest

from callbacks import map as map_callbacks
from callbacks.context import AppContext
from callbacks.filters import parse_view, search_for
from callbacks.map_click import apply_map_click
from data_sources import queries
from data_sources.filters import Filters
from data_sources.store import open_store
from data_sources.view import View, ViewError
from layouts import ids
from layouts.map import map_panel


def test_basis_lives_in_the_url_and_is_validated():
    assert View().basis == "spent"
    assert parse_view("?basis=based&metric=records") == View(metric="records", basis="based")
    assert search_for(Filters(countries=("KEN",)), View(basis="based")) == "?country=KEN&basis=based"
    assert search_for(Filters(), View(basis="spent")) == ""  # the default leaves the URL bare
    for bad in ("where", "", "BASED", "<script>"):
        with pytest.raises(ViewError):
            View(basis=bad)
    with pytest.raises(ViewError, match="drill"):
        View(basis="based", drill="AFG")  # admin-1 areas are places of spending
    assert parse_view("?basis=based&drill=AFG") == View()  # a crafted link: the defaults, never a crash
    assert parse_view("?basis=nowhere") == View()


def test_the_control_writes_the_url_and_refuses_crafted_values():
    assert map_callbacks.with_map_view("?country=KEN", basis="based") == "?country=KEN&basis=based"
    assert map_callbacks.with_map_view("?basis=based&metric=records", basis="spent") == "?metric=records"
    # Leaving a drill-down for the recipients' map keeps its filters, drops the drill.
    assert map_callbacks.with_map_view("?country=AFG&drill=AFG", basis="based") == "?country=AFG&basis=based"
    assert map_callbacks.with_map_view("", basis="spent") is None  # unchanged
    for bad in ("nowhere", {"x": 1}, ["based"], 3):
        assert map_callbacks.with_map_view("", basis=bad) is None


def test_clicks_change_nothing_on_the_recipients_map():
    click = {"points": [{"location": "KEN", "customdata": ["Kenya", "", "country"]}]}
    start = (Filters(themes=("WASH",)), View(basis="based"))
    assert apply_map_click(*start, click, frozenset({"KEN"})) == start
    assert apply_map_click(Filters(), View(), click, frozenset())[0] == Filters(countries=("KEN",))


def test_the_panel_has_a_labelled_radio():
    found = {}

    def walk(node):
        if getattr(node, "id", None) == ids.MAP_BASIS:
            found["radio"] = node
        if getattr(node, "html_for", None) == ids.MAP_BASIS:
            found["label"] = node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if child is not None and not isinstance(child, str):
                walk(child)

    walk(map_panel())
    assert found["label"].children == "Place:"
    assert [o["label"] for o in found["radio"].options] == ["where the money is spent",
                                                            "where the recipient is based"]
    assert found["radio"].value == "spent"


def _independent(engine, filters: Filters) -> tuple[pd.Series, float]:
    """Money per recipient's home country and money with none, from the rows (pandas)."""
    rows = pd.DataFrame(queries.iter_rows(engine, filters))
    rows = rows[rows["duplicate_of"].isna()]
    usd = rows["amount_usd"].fillna(0.0)
    by_country = usd.groupby(rows["recipient_country_iso3"]).sum()
    return by_country, float(usd[rows["recipient_country_iso3"].isna()].sum())


@pytest.mark.parametrize("columnar", [False, True], ids=["sql", "columnar"])
@pytest.mark.parametrize("search", ["?basis=based", "?basis=based&country=KEN&metric=records",
                                    "?basis=based&theme=Health&currency=GBP"])
def test_recipients_map_colours_home_countries(demo_store, search, columnar):
    engine = open_store(demo_store)
    context = AppContext(engine, use_columnar=columnar)
    if columnar:
        assert context.wait_for_columnar(120)
    figure, note, crumb, world_disabled, regions, precision, title = map_callbacks.map_outputs(context, search)
    # The lists beside the map are about places of spending, and say so on this map.
    assert map_callbacks.SPENT_NOTE in str(regions) + str(precision)
    from callbacks.filters import parse_search

    filters, _error = parse_search(search)
    by_country, unstated = _independent(engine, filters)
    engine.dispose()
    go.Figure(figure)
    assert [t["type"] for t in figure["data"]] == ["choropleth"]  # no points: they are places of spending
    assert world_disabled and crumb == "" and "recipient's country" in title
    assert len(by_country) >= 2  # the demo's grantees have home countries
    trace = figure["data"][0]
    hover = dict(zip(trace["locations"], (c[1] for c in trace["customdata"]), strict=True))
    view = parse_view(search)
    for iso3, usd in by_country.items():
        if view.currency == "USD":
            assert hover[iso3].startswith(map_callbacks.compact_usd(usd, "USD")), iso3
        else:
            assert "no recorded funding" not in hover[iso3]
    z = dict(zip(trace["locations"], trace["z"], strict=True))
    outside = [c for c in trace["locations"] if c not in by_country.index]
    assert all(z[c] == min(trace["z"]) for c in outside)  # grey band: no recipient based there
    # The money without a recipient's country, in the note (USD only: the others are converted per year).
    assert unstated > 0 and "recipient's country not stated" in note
    if view.currency == "USD":
        assert note.count(map_callbacks.compact_usd(unstated, "USD")) >= 1
    assert "Clicks do not filter" in note


def test_spent_map_is_unchanged_by_the_basis_default(demo_store):
    engine = open_store(demo_store)
    context = AppContext(engine, use_columnar=False)
    spent = map_callbacks.map_outputs(context, "?basis=spent")
    default = map_callbacks.map_outputs(context, "")
    based = map_callbacks.map_outputs(context, "?basis=based")
    engine.dispose()
    assert spent[0] == default[0] and spent[1] == default[1]
    assert default[0]["data"][-1]["type"] == "scattergeo"
    assert based[0]["data"][0]["z"] != default[0]["data"][0]["z"]  # another geography
    assert math.isfinite(sum(based[0]["data"][0]["z"]))
