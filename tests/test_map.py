"""The world map figure: every shipped country drawn, money on a log scale that reads in dollars,
selected countries outlined, and small updates (the shapes come from /assets once)."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go

from callbacks.map import COUNTRIES_GEOJSON_URL, compute_map_figure, shipped_countries
from layouts.map import MAP_CONFIG

TOTALS = pd.DataFrame({
    "iso3": ["KEN", "UGA", "NPL"], "name": ["Kenya", "Uganda", "Nepal"], "usd": [2.5e6, 4.0e8, 9.0e3],
    "records": [3, 40, 1], "funders": [2, 5, 1], "recipients": [3, 9, 1],
})


def test_every_country_is_drawn_and_money_reads_in_dollars():
    figure = go.Figure(compute_map_figure(TOTALS, shipped_countries(), selected=("UGA",)))  # validates
    trace = figure.data[0]
    assert len(trace.locations) == len(shipped_countries()) > 200
    assert trace.geojson == COUNTRIES_GEOJSON_URL  # fetched once by the browser, not sent each time
    by_iso3 = dict(zip(trace.locations, trace.z, strict=True))
    assert by_iso3["UGA"] > by_iso3["KEN"] > by_iso3["NPL"] > by_iso3["FRA"]  # FRA: no money, grey band
    assert trace.colorbar.ticktext[0] == "none" and "$100.0M" in trace.colorbar.ticktext
    widths = dict(zip(trace.locations, trace.marker.line.width, strict=True))
    assert widths["UGA"] > widths["KEN"]
    hover = dict(zip(trace.locations, (c[1] for c in trace.customdata), strict=True))
    assert hover["KEN"].startswith("$2.5M") and "no recorded funding" in hover["FRA"]


def test_map_update_is_small_and_offline():
    payload = json.dumps(compute_map_figure(TOTALS, shipped_countries()), default=str)
    assert len(payload) < 60_000
    assert "http" not in payload
    assert MAP_CONFIG["topojsonURL"].startswith("/assets/")


def test_empty_totals_still_draw_the_outlines():
    empty = TOTALS.iloc[0:0]
    trace = go.Figure(compute_map_figure(empty, shipped_countries())).data[0]
    assert len(set(trace.z)) == 1 and len(trace.locations) > 200


# --- metric, scale and legend ------------------------------------------------------------------

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from callbacks import map as map_callbacks  # noqa: E402
from callbacks.map_click import apply_map_click, clicked_shape, go_to_world  # noqa: E402
from data_sources import map_views  # noqa: E402
from data_sources.filters import Filters  # noqa: E402
from data_sources.view import View  # noqa: E402


def test_per_capita_is_money_over_natural_earth_population():
    import pyogrio

    from tests.conftest import shared_file

    source = pyogrio.read_dataframe(shared_file("boundaries", "naturalearth_lowres.dbf"), read_geometry=False)
    pop = dict(zip(source["iso_a3"], source["pop_est"], strict=True))
    totals = pd.concat([TOTALS, pd.DataFrame({"iso3": ["ATA"], "name": ["Nowhere"], "usd": [5e5], "records": [1],
                                              "funders": [1], "recipients": [1]})], ignore_index=True)
    population = map_views.population()
    population.pop("ATA", None)
    values = map_callbacks.metric_values(totals, "per_capita", {k: v for k, v in population.items() if k != "ATA"})
    for iso3, usd, value in zip(totals["iso3"], totals["usd"], values, strict=True):
        if iso3 == "ATA":
            assert math.isnan(value)  # no population figure
        else:
            assert value == pytest.approx(usd / pop[iso3])
    figure = go.Figure(map_callbacks.compute_map_figure(totals, shipped_countries(), metric="per_capita",
                                                        population={"KEN": int(pop["KEN"])}))
    trace = figure.data[0]
    hover = dict(zip(trace.locations, (c[1] for c in trace.customdata), strict=True))
    assert "per person" in hover["KEN"] and "no population figure" in hover["UGA"]
    assert trace.colorbar.title.text == "USD per person"


@pytest.mark.parametrize("scale", ["log", "quantile"])
@pytest.mark.parametrize("metric", ["usd", "records", "funders", "recipients"])
def test_metric_colours_follow_the_values(metric, scale):
    trace = go.Figure(map_callbacks.compute_map_figure(TOTALS, shipped_countries(), metric=metric,
                                                       scale=scale, currency="GBP")).data[0]
    z = dict(zip(trace.locations, trace.z, strict=True))
    order = TOTALS.sort_values(metric)["iso3"].tolist()
    values = TOTALS.set_index("iso3")[metric]
    for low, high in zip(order, order[1:], strict=False):
        if values[low] < values[high]:
            assert z[low] < z[high]
    assert z["FRA"] < min(z[c] for c in order)  # no value: the grey band
    assert trace.colorbar.ticktext[0] == "none" and len(trace.colorbar.tickvals) == len(trace.colorbar.ticktext)
    if metric == "usd":
        assert all(t.startswith("£") for t in trace.colorbar.ticktext[1:])
    else:
        assert not any(t.startswith(("£", "$")) for t in trace.colorbar.ticktext[1:])


def test_quantile_ticks_are_the_values_quantiles():
    values = np.array([1.0, 10.0, 100.0, 1000.0, 5.0, np.nan, 0.0])
    scale = map_callbacks.colour_scale(values, "quantile")
    positive = values[np.isfinite(values) & (values > 0)]
    assert scale.ticks[1:] == [float(np.quantile(positive, q, method="inverted_cdf"))
                               for q in (0, 0.25, 0.5, 0.75, 1)]
    assert scale.z[0] == 0.0 and scale.z[3] == 1.0 and scale.z[5] == scale.z[6] < scale.zmin + 0.2


def test_legend_reads_in_money_and_counts():
    assert map_callbacks.format_value(2.5e6, "usd", "EUR") == "€2.5M"
    assert map_callbacks.format_value(0.42, "per_capita", "USD") == "$0.42"
    assert map_callbacks.format_value(12_300, "records") == "12.3k"
    assert map_callbacks.format_value(42, "funders") == "42"


# --- drill-down clicks -------------------------------------------------------------------------


def _click(location, kind):
    return {"points": [{"location": location, "customdata": ["Name", "text", kind], "curveNumber": 0}]}


HAS = frozenset({"AFG"})


def test_click_a_country_with_provinces_drills_in():
    filters, view = apply_map_click(Filters(admin1=("X.1",)), View(), _click("AFG", "country"), HAS)
    assert filters.countries == ("AFG",) and filters.admin1 == () and view.drill == "AFG"


def test_click_a_country_without_provinces_filters_as_before():
    filters, view = apply_map_click(Filters(), View(), _click("KEN", "country"), HAS)
    assert filters.countries == ("KEN",) and view.drill is None
    again, view = apply_map_click(filters, view, _click("KEN", "country"), HAS)
    assert again.countries == () and view.drill is None
    # From a drilled view: leaves it.
    filters, view = apply_map_click(Filters(countries=("AFG",)), View(drill="AFG"), _click("KEN", "country"), HAS)
    assert filters.countries == ("KEN",) and view.drill is None


def test_click_an_area_toggles_the_admin1_filter():
    start = (Filters(countries=("AFG",)), View(drill="AFG", metric="records"))
    filters, view = apply_map_click(*start, _click("AF.KB", "admin1"), HAS)
    assert filters.admin1 == ("AF.KB",) and filters.countries == ("AFG",) and view == start[1]
    filters, view = apply_map_click(filters, view, _click("AF.KD", "admin1"), HAS)
    assert filters.admin1 == ("AF.KB", "AF.KD")
    filters, view = apply_map_click(filters, view, _click("AF.KB", "admin1"), HAS)
    assert filters.admin1 == ("AF.KD",)
    # The drilled country's own outline under its areas changes nothing.
    assert apply_map_click(filters, view, _click("AFG", "country"), HAS) == (filters, view)


@pytest.mark.parametrize("click", [
    None, {}, {"points": []}, {"points": "x"}, {"points": [None]}, {"points": [{"location": "AFG"}]},
    _click("AFG", "bogus"), _click("afg", "country"), _click("AFGX", "country"), _click(["AFG"], "country"),
    _click("<script>", "admin1"), _click("A" * 200, "admin1"), _click(None, "admin1"),
    {"points": [{"lat": 1, "lon": 2, "customdata": ["x", "point"]}]},
    {"points": [{"location": "AF.KB", "customdata": "admin1"}]},
])
def test_crafted_clicks_change_nothing(click):
    start = (Filters(countries=("AFG",)), View(drill="AFG"))
    assert apply_map_click(*start, click, HAS) == start
    assert apply_map_click(Filters(), View(), click, HAS) == (Filters(), View())


def test_admin1_click_in_the_world_view_is_refused():
    assert clicked_shape(_click("AF.KB", "admin1")) == ("admin1", "AF.KB")
    assert apply_map_click(Filters(), View(), _click("AF.KB", "admin1"), HAS) == (Filters(), View())


def test_world_goes_back_up():
    filters, view = go_to_world(Filters(countries=("AFG", "KEN"), admin1=("AF.KB",), themes=("WASH",)),
                                View(drill="AFG", metric="funders"))
    assert filters == Filters(countries=("KEN",), themes=("WASH",)) and view == View(metric="funders")
    assert map_callbacks.world_search("?country=AFG&drill=AFG&theme=WASH") == "?theme=WASH"
    assert map_callbacks.world_search("?country=AFG") is None


def test_controls_write_the_url_and_refuse_crafted_values():
    assert map_callbacks.with_map_view("?country=KEN", metric="per_capita") == "?country=KEN&metric=per_capita"
    assert map_callbacks.with_map_view("?metric=records", scale="quantile") == "?metric=records&scale=quantile"
    assert map_callbacks.with_map_view("", metric="usd") is None  # unchanged
    for bad in ("drop table", {"x": 1}, ["usd"], 3):
        assert map_callbacks.with_map_view("", metric=bad) is None
        assert map_callbacks.with_map_view("", scale=bad) is None


# --- drilled figure, points, and the whole panel on the demo store --------------------------------


def test_drilled_figure_is_fitted_and_inline(demo_store):
    from data_sources.store import open_store

    engine = open_store(demo_store)
    shapes = map_views.admin1_shapes(engine, "AFG")
    areas = map_views.admin1_totals_sql(engine, map_views.admin1_filters(Filters(), "AFG"))
    engine.dispose()
    figure = map_callbacks.compute_admin1_figure(areas, shapes, "AFG", shipped_countries(), ("AF.KB",),
                                                 "per_capita", "quantile")
    validated = go.Figure(figure)
    outline, trace = validated.data
    assert outline.geojson == COUNTRIES_GEOJSON_URL and len(outline.locations) > 200  # outlines still show
    assert trace.geojson["features"] and len(trace.locations) == 32
    assert all(c[1].endswith("no population figure") for c in trace.customdata)  # admin-1 has no population
    geo = figure["layout"]["geo"]
    assert 58 < geo["lonaxis"]["range"][0] < 61 and 74 < geo["lonaxis"]["range"][1] < 77
    widths = dict(zip(trace.locations, trace.marker.line.width, strict=True))
    assert widths["AF.KB"] > widths["AF.KD"]


def test_points_trace_sizes_by_money_and_says_precision():
    cells = pd.DataFrame({"cell_lat": [34, 31], "cell_lon": [69, 65], "lat": [34.5, 31.5], "lon": [69.5, 65.5],
                          "rows": [12, 1], "usd": [4e6, 1e4]})
    trace = map_callbacks.compute_points_trace(map_views.cap_cells(cells), 1.0, "GBP")
    go.Figure({"data": [trace]})
    assert trace["marker"]["size"][0] > trace["marker"]["size"][1]
    assert trace["customdata"][0][0].startswith("12 allocations · £4.0M") and "point" in trace["customdata"][0][0]
    assert trace["customdata"][1][-1] == "point"
    assert map_callbacks.compute_points_trace(map_views.cap_cells(cells.iloc[0:0]), 1.0) is None


@pytest.mark.parametrize("search", ["", "?metric=per_capita&scale=quantile&currency=EUR",
                                    "?country=AFG&drill=AFG", "?country=AFG&drill=AFG&admin1=AF.KB&metric=records",
                                    "?drill=KEN", "?drill=%3Cx%3E&metric=bogus"])
def test_map_panel_updates_are_small_and_valid(demo_store, search):
    from callbacks.context import AppContext
    from data_sources.store import open_store

    engine = open_store(demo_store)
    context = AppContext(engine, use_columnar=False)
    figure, note, crumb, world_disabled, regions, precision, title = map_callbacks.map_outputs(context, search)
    engine.dispose()
    go.Figure(figure)
    payload = json.dumps(figure, default=str)
    assert len(payload) < 300_000 and "http" not in payload
    drilled = "drill=AFG" in search
    assert world_disabled is (not drilled)
    assert ("Afghanistan" in crumb) is drilled and ("province" in title) is drilled
    assert isinstance(figure["data"][-1], dict) and figure["data"][-1]["type"] == "scattergeo"
    if drilled:
        assert figure["data"][1]["geojson"]["features"]  # inline for that one country
        assert all(-90 < lat < 90 for lat in figure["data"][-1]["lat"])
    else:
        assert figure["data"][0]["geojson"] == COUNTRIES_GEOJSON_URL
        assert regions and precision  # regional money listed, place precision summarised
        assert "regions or unspecified places" in note


def test_map_config_saves_png_offline():
    assert MAP_CONFIG["scrollZoom"] is False
    assert MAP_CONFIG["toImageButtonOptions"]["filename"].startswith("fundatlas")
    assert ["toImage"] in MAP_CONFIG["modeBarButtons"]


def test_a_drill_without_its_country_filter_goes_back_to_the_world():
    from callbacks.map_click import settle_drill

    assert settle_drill(Filters(), View(drill="AFG", scale="quantile")) == View(scale="quantile")
    assert settle_drill(Filters(countries=("AFG",)), View(drill="AFG")) == View(drill="AFG")
    assert settle_drill(Filters(countries=("KEN",)), View()) == View()
