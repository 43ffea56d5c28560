"""The map panel: the choropleth (world, or a country's admin-1 areas), its metric and its notes."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts import ids

# plotly.js asks for its world topojson even for GeoJSON maps: serve the vendored copy, never the CDN.
MAP_CONFIG = {"displaylogo": False, "scrollZoom": False, "topojsonURL": "/assets/topojson/"}


def map_panel() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody([
            html.H2("Where the money goes: USD by country", className="h6"),
            dcc.Loading(dcc.Graph(id=ids.MAP, config=MAP_CONFIG,
                                  style={"height": "460px"}, className="map-graph"), type="dot"),
            html.Div(id=ids.MAP_NOTE, className="small text-muted"),
        ]),
        className="shadow-sm mb-3",
    )
