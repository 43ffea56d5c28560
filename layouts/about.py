"""The About page: what fundatlas shows and how it counts, in plain words, and what the store holds."""

from __future__ import annotations

from collections.abc import Callable

import dash_bootstrap_components as dbc
from dash import dcc, html

from layouts import ids

SOURCE_NAMES = {
    "360giving": "360Giving grants (UK foundations and charities)",
    "iati": "IATI activity files (donors, agencies and NGOs)",
    "oecd_crs": "OECD Creditor Reporting System (official development aid)",
    "ocha_fts": "OCHA Financial Tracking Service (humanitarian flows)",
    "hdx_3w": "HDX 3W/4W sheets (who does what where)",
    "table": "funders' own spreadsheets, read with a mapping file",
}

PLACE_PRECISION = (
    ("point", "the source gives a point (a project site or a town)"),
    ("admin2", "a second-level area (a district)"),
    ("admin1", "a first-level area (a province or region)"),
    ("country", "a country only: the map puts it at the country's representative point"),
    ("region", "a region with no single country (e.g. 'South of Sahara, regional'): listed beside the map"),
    ("unknown", "the source names no place"),
)


def _section(title: str, *children) -> html.Section:
    return html.Section([html.H3(title, className="h6 mt-3"), *children])


def about_page() -> html.Div:
    """Static text; the store's own figures come from ``callbacks.about`` into ``ids.ABOUT_SUMMARY``."""
    return html.Div(
        dbc.Card(dbc.CardBody([
            html.H2("About fundatlas", className="h5"),
            html.P("fundatlas answers one question: who funds what, where? It reads the open data streams of the "
                   "philanthropy and aid world and joins them into one table: one row for each part of a grant, "
                   "transaction or flow that goes to one place."),
            _section("What this store holds", dcc.Loading(html.Div(id=ids.ABOUT_SUMMARY), type="dot"),
                     html.P(["Every file and load, with rejected records and data quality: ",
                             dcc.Link("Sources", href="/sources"), "."], className="small")),
            _section(
                "How amounts are counted",
                html.Ul([
                    html.Li("Each record (a grant, a transaction, a flow) is split into allocation rows, one per "
                            "place or sector it names, by the source's own percentages. A record's rows add up to "
                            "its amount, so no money is counted twice on the map."),
                    html.Li("A commitment and the disbursements that follow it are the same money at two stages. "
                            "The headline shows the total per flow type; pick one flow type to compare like with "
                            "like."),
                    html.Li("Some money is reported by two streams (a donor's IATI file and the OECD CRS, a UK "
                            "grant in 360Giving and in IATI). fundatlas links such pairs by conservative rules and "
                            "counts each amount once; the other report stays in tables and exports, marked as a "
                            "duplicate."),
                    html.Li("Amounts keep their original currency. Each is also given in US dollars at the annual "
                            "average rate of its year (ECB reference rates; the IMF's where configured). An amount "
                            "with no known rate has no dollar value and says why. The display currency (GBP, EUR) "
                            "converts the dollar figures back at the same annual rates."),
                    html.Li("HDX 3W rows say who works where, not how much: they count organisations and "
                            "activities, never money."),
                ]),
            ),
            _section(
                "Place precision",
                html.P("Each row says how precisely the source places it (the column geo_level):"),
                html.Ul([html.Li([html.Strong(level), ": ", text]) for level, text in PLACE_PRECISION]),
            ),
            _section(
                "Organisations",
                html.P("The same organisation is written differently by each stream. fundatlas gives each one "
                       "identity: by its registered identifier (charity, company or IATI number), then by its "
                       "name written the same way. Two organisations with different registered identifiers are "
                       "never merged."),
            ),
            _section(
                "Data and licences",
                html.P("Each source's data keeps its own licence (360Giving publishers mostly CC BY 4.0; IATI "
                       "publishers' own terms; OECD, OCHA and HDX terms of use). Country and admin-1 boundaries: "
                       "Natural Earth (public domain), simplified. Exchange rates: European Central Bank "
                       "reference rates."),
            ),
        ]), className="shadow-sm mb-3"),
        id=ids.PAGE_ABOUT, style={"display": "none"},
    )


def store_summary(summary: dict, format_usd: Callable[[float], str]) -> html.Div:
    """Rows and money counted once per stream, as ``queries.summary`` gives them."""
    if not summary["rows"]:
        return html.P("Nothing is loaded yet.")
    rows = [html.Tr([html.Td(SOURCE_NAMES.get(source, source)), html.Td(f"{v['records']:,}"),
                     html.Td(f"{v['rows']:,}"), html.Td(format_usd(v["usd"]))])
            for source, v in sorted(summary["by_source"].items())]
    header = html.Thead(html.Tr([html.Th("stream"), html.Th("records"), html.Th("rows"), html.Th("US dollars")]))
    years = [y for y in summary["by_year"] if y != "unknown"]
    span = f" from {min(years)} to {max(years)}" if years else ""
    return html.Div([
        html.P(f"{summary['records']:,} records in {summary['rows']:,} allocation rows{span}; "
               f"{summary['duplicate_rows_excluded']:,} rows are reports of money another stream already counts."),
        dbc.Table([header, html.Tbody(rows)], size="sm", striped=True, responsive=True, className="small"),
    ])

