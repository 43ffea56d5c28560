"""The About page: what fundatlas shows and how it counts, in plain words."""

from __future__ import annotations

from dash import html

from layouts import ids


def about_page() -> html.Div:
    return html.Div([html.H2("About fundatlas", className="h5")], id=ids.PAGE_ABOUT, style={"display": "none"})
