"""The co-funder finder (for NGOs): the funders active where the filters point, and whom they fund."""

from __future__ import annotations

from dash import html

from layouts import ids


def cofunders_page() -> html.Div:
    return html.Div([html.H2("Co-funders", className="h5")], id=ids.PAGE_COFUNDERS, style={"display": "none"})
