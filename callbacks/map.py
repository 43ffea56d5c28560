"""The world choropleth: USD by country, drawn offline from the shipped boundaries.

No tiles, topojson or scripts come from the web: the country shapes are the vendored Natural
Earth GeoJSON, which the browser fetches once from this server (``/assets/countries.geojson``;
plotly.js keeps it by URL), so a map update carries only codes and values. Every ``geo.show*``
layer is off, and the map's ``topojsonURL`` points at the local copy, so nothing comes from a CDN.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
from dash import Dash, Input, Output
from plotly.colors import sample_colorscale

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view
from callbacks.formatting import compact_usd
from data_sources import geography, queries
from layouts import ids

# Colour-blind-safe sequential scale (viridis, reversed so more money is darker).
COLORSCALE = "Viridis_r"


NO_FUNDING_COLOUR = "#e9ecef"


def _colorscale(no_funding_band: float) -> list[list]:
    """Viridis for money, with a grey band at the bottom for countries with no recorded funding."""
    steps = sample_colorscale(COLORSCALE, [i / 9 for i in range(10)])
    scale = [[0.0, NO_FUNDING_COLOUR], [no_funding_band, NO_FUNDING_COLOUR]]
    scale += [[no_funding_band + (1 - no_funding_band) * i / 9, colour] for i, colour in enumerate(steps)]
    return scale


COUNTRIES_GEOJSON_URL = "/assets/countries.geojson"


@cache
def shipped_countries() -> pd.DataFrame:
    """iso3 and name of every shape in the shipped boundaries (read once)."""
    features = geography.load_countries_geojson()["features"]
    return pd.DataFrame({
        "iso3": [f["id"] for f in features],
        "shape_name": [f.get("properties", {}).get("name") or f["id"] for f in features],
    })


def compute_map_figure(
    totals: pd.DataFrame,
    countries: pd.DataFrame,
    selected: tuple[str, ...] = (),
    geojson: str | dict = COUNTRIES_GEOJSON_URL,
) -> dict:
    """Choropleth of ``totals`` (iso3, name, usd, records, funders, recipients), log colour scale in money.

    One trace holds every shipped country (``countries``: iso3, shape_name), so the outlines always
    show: countries without money sit in a grey band below the money scale.
    """
    frame = countries.merge(totals, on="iso3", how="left")
    frame["usd"] = frame["usd"].fillna(0.0)
    has_money = frame["usd"] > 0
    if has_money.any():
        log_usd = np.log10(frame.loc[has_money, "usd"].astype(float))
        low, high = math.floor(float(log_usd.min())), math.ceil(float(log_usd.max()))
    else:
        low, high = 3, 6
    high = max(high, low + 1)
    none_value = low - 1
    z = np.where(has_money, np.log10(frame["usd"].where(has_money, 1.0).astype(float)), none_value)
    tickvals = [float(none_value)] + [float(t) for t in range(low, high + 1)]
    ticktext = ["none"] + [compact_usd(10.0**t) for t in range(low, high + 1)]
    names = frame["name"].fillna(frame["shape_name"]).astype(str)
    figures = np.where(
        has_money,
        frame["usd"].map(compact_usd) + "<br>" + frame["records"].fillna(0).astype(int).map("{:,}".format)
        + " records · " + frame["funders"].fillna(0).astype(int).map("{:,}".format) + " funders · "
        + frame["recipients"].fillna(0).astype(int).map("{:,}".format) + " recipients",
        "no recorded funding for these filters",
    )
    selected_set = set(selected)
    iso3 = frame["iso3"].tolist()
    # A plain plotly dict (go.Figure validation would cost more than the whole aggregate).
    trace = {
        "type": "choropleth", "geojson": geojson, "locations": iso3, "z": z.tolist(), "featureidkey": "id",
        "colorscale": _colorscale(1 / (high - none_value + 0.5)), "zmin": none_value - 0.5, "zmax": high,
        "customdata": [[name, text] for name, text in zip(names.tolist(), figures.tolist(), strict=True)],
        "marker": {"line": {"color": ["#d62728" if code in selected_set else "#ffffff" for code in iso3],
                            "width": [2.0 if code in selected_set else 0.4 for code in iso3]}},
        "colorbar": {"title": {"text": "USD"}, "tickvals": tickvals, "ticktext": ticktext, "thickness": 12,
                     "len": 0.8},
        "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>",
        "name": "USD by country",
    }
    layout = {
        "geo": {"visible": False, "projection": {"type": "natural earth"}, "showframe": False,
                "lataxis": {"range": [-58, 85]}, "bgcolor": "rgba(0,0,0,0)"},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "paper_bgcolor": "rgba(0,0,0,0)", "dragmode": False,
        "clickmode": "event", "uirevision": "map",
    }
    return {"data": [trace], "layout": layout}


def compute_map_note(totals: pd.DataFrame, headline: queries.Headline) -> str:
    parts = []
    if headline.usd_without_country:
        parts.append(f"{compact_usd(headline.usd_without_country)} goes to regions or unspecified places and "
                     "is not on the map.")
    if headline.amounts_without_usd:
        parts.append(f"{headline.amounts_without_usd:,} rows have no USD value (no exchange rate known).")
    parts.append("Click a country to filter by it; click it again to clear.")
    return " ".join(parts)


def register(app: Dash, context: AppContext) -> None:
    shipped_countries()  # read the shipped boundaries now, not in the first user's map update

    @app.callback(
        Output(ids.MAP, "figure"),
        Output(ids.MAP_NOTE, "children"),
        Input(ids.URL, "search"),
    )
    def update_map(search):
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        # The map shows every country's total, with the selected ones outlined, so a click can go back.
        map_filters = replace(filters, countries=())
        totals = context.cached(f"country_totals:{currency}", lambda r, f: r.country_totals(f, currency), map_filters)
        head = context.cached(f"headline:{currency}", lambda r, f: r.headline(f, currency), map_filters)
        return (compute_map_figure(totals, shipped_countries(), filters.countries),
                compute_map_note(totals, head))
