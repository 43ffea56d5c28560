"""The page: a navbar, the filters beside the workspace pages (map, co-funders), and the pages that
stand alone (profiles, sources, about). ``callbacks.pages`` shows the one the URL's path names."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from data_sources.schema import FLOW_TYPES, SOURCES
from data_sources.view import CURRENCIES
from layouts import ids
from layouts.about import about_page
from layouts.cofunders import cofunders_page
from layouts.map import map_panel
from layouts.profile import profile_page
from layouts.sources import sources_panel
from layouts.table import table_panel


def _labelled(label: str, control, control_id: str) -> html.Div:
    return html.Div([dbc.Label(label, html_for=control_id, className="mb-1 small fw-semibold"), control],
                    className="mb-3")


def _dropdown(control_id: str, placeholder: str, options: list | None = None) -> dcc.Dropdown:
    return dcc.Dropdown(id=control_id, options=options or [], multi=True, placeholder=placeholder,
                        searchable=True, clearable=True)


def filters_panel(year_range: tuple[int, int], themes: list[str]) -> dbc.Card:
    low, high = year_range
    step = max(1, round((high - low) / 4))
    marks = {y: str(y) for y in range(low, high + 1, step) if high - y >= step / 2}
    marks[high] = str(high)
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("Filters", className="h6 text-uppercase text-muted"),
                _labelled("Years", dcc.RangeSlider(id=ids.YEARS, min=low, max=high, step=1, value=[low, high],
                                                   marks=marks, allowCross=False,
                                                   tooltip={"placement": "bottom"}), ids.YEARS),
                _labelled("Funder", _dropdown(ids.FUNDER, "Any funder (type to search)"), ids.FUNDER),
                _labelled("Recipient", _dropdown(ids.RECIPIENT, "Any recipient (type to search)"),
                          ids.RECIPIENT),
                _labelled("Theme", _dropdown(ids.THEME, "Any theme", [{"label": t, "value": t} for t in themes]),
                          ids.THEME),
                _labelled("Sector (DAC)", _dropdown(ids.SECTOR, "Any sector (type to search)"), ids.SECTOR),
                _labelled("Country", _dropdown(ids.COUNTRY, "Any country (or click the map)"), ids.COUNTRY),
                _labelled("Source", _dropdown(ids.SOURCE, "Any source", [{"label": s, "value": s} for s in SOURCES]),
                          ids.SOURCE),
                _labelled("Flow type", _dropdown(ids.FLOW_TYPE, "Any flow type",
                                                 [{"label": f, "value": f} for f in FLOW_TYPES]), ids.FLOW_TYPE),
                _labelled("Display currency", dbc.RadioItems(
                    id=ids.CURRENCY, options=[{"label": c, "value": c} for c in CURRENCIES], value="USD",
                    inline=True, className="small"), ids.CURRENCY),
                dbc.Button("Reset filters", id=ids.RESET, color="secondary", outline=True, size="sm"),
            ]
        ),
        className="shadow-sm",
    )


CHART_TITLES = {
    ids.CHART_YEARS: "Amount by year", ids.CHART_FUNDERS: "Top funders", ids.CHART_RECIPIENTS: "Top recipients",
    ids.CHART_THEMES: "Themes",
}


def charts_panel() -> dbc.Card:
    """Linked views; a click on a bar filters everything by it."""
    def chart(chart_id: str, width: int) -> dbc.Col:
        return dbc.Col([
            html.H3(CHART_TITLES[chart_id], className="h6 mb-1"),
            dcc.Loading(dcc.Graph(id=chart_id, config={"displaylogo": False, "displayModeBar": False},
                                  className="chart-graph"), type="dot"),
            # Top funders and recipients: links to the profiles of the bars shown.
            html.Div(id=ids.CHART_PROFILES[chart_id], className="small text-break") if chart_id in ids.CHART_PROFILES
            else None,
        ], xs=12, lg=width, className="mb-2")

    return dbc.Card(dbc.CardBody([
        html.P("Click a bar to filter everything by it; click it again to clear.", className="small text-muted mb-2"),
        dbc.Row([chart(ids.CHART_YEARS, 6), chart(ids.CHART_THEMES, 6)]),
        dbc.Row([chart(ids.CHART_FUNDERS, 6), chart(ids.CHART_RECIPIENTS, 6)]),
    ]), className="shadow-sm mb-3")


def _figure_card(title: str, value_id: str) -> dbc.Col:
    return dbc.Col(
        dbc.Card(dbc.CardBody([html.Div(title, className="small text-muted"),
                               html.Div("…", id=value_id, className="fs-4 fw-semibold", **{"aria-live": "polite"})])),
        xs=6, lg=3, className="mb-2",
    )


def headline_row() -> html.Div:
    return html.Div(
        [
            html.Div(id=ids.ACTIVE_FILTERS, className="mb-2", **{"aria-label": "Active filters"}),
            dbc.Row([
                _figure_card("Total amount (counted once)", ids.HEADLINE_USD),
                _figure_card("Records", ids.HEADLINE_RECORDS),
                _figure_card("Funders", ids.HEADLINE_FUNDERS),
                _figure_card("Recipients", ids.HEADLINE_RECIPIENTS),
            ]),
            html.Div(id=ids.HEADLINE_NOTE, className="small text-muted mb-2"),
        ]
    )


def unavailable_page(message: str) -> html.Div:
    """What the page shows when the store cannot be read at all."""
    return dbc.Container(dbc.Alert(message, color="danger", className="mt-4"), id="page-unavailable")


NAV_LINKS = ((ids.NAV_MAP, "Map", "/"), (ids.NAV_COFUNDERS, "Co-funders", "/cofunders"),
             (ids.NAV_SOURCES, "Sources", "/sources"), (ids.NAV_ABOUT, "About", "/about"))


def navbar() -> dbc.Navbar:
    return dbc.Navbar(
        dbc.Container([
            html.Span([html.Strong("fundatlas"), html.Span(" · who funds what, where", className="ms-1")],
                      className="navbar-brand mb-0 h1"),
            dbc.Nav([dbc.NavItem(dcc.Link(label, href=href, id=nav_id, className="nav-link"))
                     for nav_id, label, href in NAV_LINKS], navbar=True, className="flex-row flex-wrap gap-2"),
        ], fluid=True),
        color="dark", dark=True, className="mb-3", id=ids.NAVBAR,
    )


def page(year_range: tuple[int, int], themes: list[str], demo_label: str | None) -> html.Div:
    banner = None
    if demo_label:
        banner = dbc.Alert(demo_label, color="warning", className="py-1 mb-2 small", id="demo-banner")
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            navbar(),
            dbc.Container(
                [
                    banner,
                    dbc.Alert(id=ids.FILTER_ERROR, color="danger", is_open=False, className="py-1 small"),
                    dbc.Alert(id=ids.STATUS, color="danger", is_open=False, duration=15000, className="py-1 small"),
                    # The workspace: the filters drive the map page and the co-funder finder alike.
                    dbc.Row([
                        dbc.Col(filters_panel(year_range, themes), md=4, lg=3, className="mb-3",
                                id=ids.FILTERS_COLUMN),
                        dbc.Col([
                            html.Div(headline_row(), id=ids.PANEL_HEADLINE),
                            html.Div([map_panel(), html.Div(charts_panel(), id=ids.PANEL_CHARTS),
                                      html.Div(table_panel(), id=ids.PANEL_TABLE),
                                      html.Div(id=ids.EMBED_NOTE)], id=ids.PAGE_MAIN),
                            cofunders_page(),
                        ], md=8, lg=9, id=ids.WORKSPACE_CONTENT),
                    ], id=ids.PAGE_WORKSPACE),
                    profile_page(),
                    sources_panel(),
                    about_page(),
                    html.Footer(
                        ["Boundaries: Natural Earth (public domain). Exchange rates: ECB reference rates, annual "
                         "means. Amounts are split over places and sectors by the source's percentages, so each "
                         "amount is counted once."],
                        className="small text-muted my-3", id=ids.FOOTER,
                    ),
                ],
                fluid=True,
            ),
        ]
    )
