"""The map panel: the choropleth (world, or a country's admin-1 areas), its metric and its notes."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from data_sources.view import BASES, METRICS
from layouts import ids

# plotly.js asks for its world topojson even for GeoJSON maps: serve the vendored copy, never the CDN.
# The modebar's camera button saves the map as a PNG in the browser (no server, no network).
MAP_CONFIG = {
    "displaylogo": False, "scrollZoom": False, "topojsonURL": "/assets/topojson/", "responsive": True,
    "displayModeBar": True, "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": {"format": "png", "filename": "fundatlas-map", "scale": 2},
}
SCALE_LABELS = {"log": "Log scale", "quantile": "Quantiles"}


def _control(label: str, control_id: str, options: dict[str, str]) -> html.Div:
    return html.Div([
        dbc.Label(label, html_for=control_id, className="small mb-0 me-1"),
        dbc.Select(id=control_id, options=[{"label": text, "value": value} for value, text in options.items()],
                   size="sm", style={"width": "auto"}),
    ], className="d-flex align-items-center me-3 mb-1")


def _basis_control() -> html.Div:
    """Which country holds a row's money on the map: its place, or its recipient's home country."""
    return html.Div([
        dbc.Label("Place:", html_for=ids.MAP_BASIS, className="small mb-0 me-2"),
        dbc.RadioItems(id=ids.MAP_BASIS, options=[{"label": text, "value": value} for value, text in BASES.items()],
                       value="spent", inline=True, className="small"),
    ], className="d-flex flex-wrap align-items-center mb-1")


def map_panel() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody([
            html.H2("Where the money goes", id=ids.MAP_TITLE, className="h6"),
            html.Div([
                html.Nav([
                    html.Button("World", id=ids.MAP_WORLD, n_clicks=0, type="button",
                                className="btn btn-link btn-sm p-0 align-baseline",
                                title="Back to the world map"),
                    html.Span(id=ids.MAP_CRUMB, className="small"),
                ], **{"aria-label": "Map level"}, className="me-auto mb-1"),
                _control("Colour by", ids.MAP_METRIC, METRICS),
                _control("Scale", ids.MAP_SCALE, SCALE_LABELS),
            ], className="d-flex flex-wrap align-items-center"),
            _basis_control(),
            dcc.Loading(dcc.Graph(id=ids.MAP, config=MAP_CONFIG, style={"height": "460px"},
                                  className="map-graph"), type="dot"),
            html.Div(id=ids.MAP_NOTE, className="small text-muted"),
            dbc.Row([
                dbc.Col(html.Div(id=ids.MAP_REGIONS, className="small"), xs=12, md=6),
                dbc.Col(html.Div(id=ids.MAP_PRECISION, className="small"), xs=12, md=6),
            ], className="mt-2"),
        ]),
        className="shadow-sm mb-3",
    )
