"""A profile page per funder and per recipient: /funder/<key> and /recipient/<key>."""

from __future__ import annotations

from dash import html

from layouts import ids


def profile_page() -> html.Div:
    return html.Div([html.H2("Profile", className="h5")], id=ids.PAGE_PROFILE, style={"display": "none"})
