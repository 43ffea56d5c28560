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
