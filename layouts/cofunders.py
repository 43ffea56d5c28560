"""The co-funder finder (for NGOs): the funders active where the filters point, and whom they fund.

The page sits beside the filters panel: a place and/or a theme, or an organisation, is picked there.
Its sections are filled by ``callbacks.cofunders``."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts import ids


def _section(title: str, note: str, body: list, label: str) -> dbc.Card:
    # A labelled region (dbc.Card takes no aria attributes): screen readers can jump between sections.
    return html.Section(dbc.Card(dbc.CardBody([html.H3(title, className="h6 mb-1"),
                                               html.P(note, className="small text-muted mb-2"), *body]),
                                 className="shadow-sm mb-3"), **{"aria-label": label})


def cofunders_page() -> html.Div:
    return html.Div(
        [
            html.H2("Co-funders", className="h5"),
            html.P("Looking for co-funders? Pick a place and/or a theme in the filters (or a funder, or several "
                   "funders to compare them as a basket). This page lists who funds there, whom they fund, and "
                   "who funds alike.", className="small"),
            html.Div(id=ids.COFUNDERS_BASKET),
            _section("Funders active here", "Ranked by money under the filters (counted once).", [
                dcc.Loading(html.Div(id=ids.COFUNDERS_RANKING, **{"aria-live": "polite"}), type="dot"),
                dbc.Button("Show more funders", id=ids.COFUNDERS_MORE, n_clicks=0, size="sm", color="secondary",
                           outline=True, className="mt-2"),
            ], "Funders active here"),
            _section("Funders like this one", "Other funders that fund the same recipients, in the same countries "
                     "and themes, with their money split alike (the filters' funder left out).", [
                dbc.Label("Funder to compare with", html_for=ids.COFUNDERS_LIKE, className="small fw-semibold mb-1"),
                dcc.Dropdown(id=ids.COFUNDERS_LIKE, options=[], multi=False, clearable=True,
                             placeholder="Pick a funder (or choose one funder in the filters)"),
                dcc.Loading(html.Div(id=ids.COFUNDERS_SIMILAR, className="mt-2", **{"aria-live": "polite"}),
                            type="dot"),
            ], "Funders like this one"),
            _section("Who funds whom together", "The largest funders and the recipients they fund; a recipient "
                     "drawn as a diamond is funded by two or more of the funders shown. Click a node for its "
                     "profile.", [
                html.Div(id=ids.COFUNDERS_NETWORK_NOTE, className="small mb-1"),
                # Responsive: the figure takes the card's width (a phone's too) and this height.
                dcc.Loading(dcc.Graph(id=ids.COFUNDERS_NETWORK, config={"displaylogo": False, "responsive": True},
                                      className="cofunders-network", style={"height": "640px"},
                                      figure={"data": [], "layout": {}}), type="dot"),
            ], "Network of funders and recipients"),
        ],
        id=ids.PAGE_COFUNDERS,
        style={"display": "none"},
    )
