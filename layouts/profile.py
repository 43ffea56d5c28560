"""A profile page per funder and per recipient: /funder/<key> and /recipient/<key>.

``profile_page()`` is the page's fixed frame (its records grid must be in the layout from the start,
for its paging callback); ``profile_view()`` is what the callback puts in it for one organisation.
Every name and id from the data goes in as text children (escaped), never as markup.
"""

from __future__ import annotations

from pathlib import PurePath

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from callbacks.formatting import compact_usd
from callbacks.pages import profile_href
from layouts import ids
from layouts.map import MAP_CONFIG
from layouts.table import column_defs

HIDDEN = {"display": "none"}
ROLE_TITLES = {"funder": "Funder", "recipient": "Recipient"}
NAMES_SHOWN = 12
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": False, "responsive": True}  # fit a phone
# The map's own config (plotly.js reads its topojson from this server, never the CDN), without the modebar.
PROFILE_MAP_CONFIG = {**MAP_CONFIG, "displayModeBar": False, "responsive": True}


def profile_grid() -> dag.AgGrid:
    """All the organisation's rows, a page at a time from the server (as the main table)."""
    return dag.AgGrid(
        id=ids.PROFILE_TABLE,
        rowModelType="infinite",
        columnDefs=column_defs(),  # the main table's columns, with its profile and source links
        defaultColDef={"resizable": True, "filter": False},
        dashGridOptions={"cacheBlockSize": 100, "maxBlocksInCache": 5, "rowBuffer": 0, "infiniteInitialRowCount": 1},
        style={"height": "420px"},
        className="ag-theme-alpine",
    )


def _records_card() -> dbc.Card:
    return dbc.Card(dbc.CardBody([
        html.Div([
            html.H3("All its records", className="h6 mb-0 me-auto"),
            html.Span(id=ids.PROFILE_TABLE_COUNT, className="small text-muted me-3"),
            dcc.Link("Open these rows on the map", id=ids.PROFILE_MAP_LINK, href="/", className="small me-3"),
            html.A("Export CSV", id=ids.PROFILE_EXPORT_CSV, href="/export/csv", role="button",
                   className="btn btn-primary btn-sm me-1", download="fundatlas-export.csv"),
            html.A("XLSX", id=ids.PROFILE_EXPORT_XLSX, href="/export/xlsx", role="button",
                   className="btn btn-outline-primary btn-sm", download="fundatlas-export.xlsx"),
        ], className="d-flex flex-wrap align-items-center gap-1 mb-2"),
        html.Div(profile_grid(), id=ids.PROFILE_TABLE_CONTAINER),
    ]), className="shadow-sm mb-3")


def profile_page() -> html.Div:
    return html.Div([
        html.Div(id=ids.PROFILE_CONTENT),
        html.Div(_records_card(), id=ids.PROFILE_RECORDS, style=HIDDEN),
    ], id=ids.PAGE_PROFILE, style=HIDDEN)


def not_found(role: str | None, key: str | None) -> dbc.Alert:
    """A profile path that names no rows: said plainly, with the way back."""
    who = ROLE_TITLES.get(role or "", "organisation").lower()
    text = (f"No {who} is known by “{key}” in this data." if key else "This is not a profile's address.")
    return dbc.Alert([
        html.H2("Profile not found", className="h5"),
        html.P(text, className="mb-1"),
        html.P(["Look it up with the filters on the ", dcc.Link("map", href="/"), "."], className="mb-0 small"),
    ], color="warning", className="mt-2", id="profile-not-found")


# --- one organisation's profile -------------------------------------------------------------------


def _link(role: str, key: object, label: object, cut: int = 60) -> dcc.Link:
    text = str(label if label is not None else key)
    return dcc.Link(text if len(text) <= cut else text[: cut - 1] + "…", href=profile_href(role, str(key)),
                    title=text)


def _figure(title: str, value: str) -> dbc.Col:
    body = dbc.CardBody([html.Div(title, className="small text-muted"), html.Div(value, className="fs-5 fw-semibold")])
    return dbc.Col(dbc.Card(body), xs=6, lg=3, className="mb-2")


def _years_text(years: pd.DataFrame) -> str:
    if years.empty:
        return "–"
    low, high = int(years["value"].min()), int(years["value"].max())
    return str(low) if low == high else f"{low}–{high}"


def _about(profile, sources: pd.DataFrame) -> dbc.Card:
    identity = profile.identity or {}
    parts: list = []
    if identity.get("identifier"):
        registry = f" ({identity['registry']})" if identity.get("registry") else ""
        parts.append(html.P([html.Span("Identifier: ", className="text-muted"),
                             html.Code(str(identity["identifier"])), registry], className="mb-1 small"))
    ids_seen = identity.get("ids") or []
    if ids_seen:
        shown = [html.Code(str(e["value"]), title=_sources_title(e)) for e in ids_seen[:NAMES_SHOWN]]
        parts.append(html.P([html.Span("Ids used: ", className="text-muted"), *_joined(shown)],
                            className="mb-1 small", id="profile-ids"))
    names = identity.get("names") or []
    if names:
        shown = [html.Span(str(e["value"]), title=_sources_title(e)) for e in names[:NAMES_SHOWN]]
        more = [f" and {len(names) - NAMES_SHOWN} more"] if len(names) > NAMES_SHOWN else []
        parts.append(html.P([html.Span("Known as: ", className="text-muted"), *_joined(shown), *more],
                            className="mb-1 small", id="profile-names"))
    if not identity:
        parts.append(html.P(f"Rows recorded under “{profile.key}” (no organisation identity is known for it).",
                            className="mb-1 small text-muted"))
    elif identity.get("org_key") != profile.key:
        parts.append(html.P(["These are the rows recorded under “", profile.key, "”. The whole organisation: ",
                             _link(profile.role, identity["org_key"], identity.get("display_name")), "."],
                            className="mb-1 small"))
    if not sources.empty:
        items = []
        for row in sources.itertuples(index=False):
            loaded = pd.Timestamp(row.loaded_at).strftime("%Y-%m-%d") if pd.notna(row.loaded_at) else "date unknown"
            items.append(html.Li([html.Strong(str(row.source)), " · ", _file_name(row.source_file),
                                  f" · loaded {loaded} · {int(row.rows):,} rows"], className="text-break"))
        parts.append(html.Div([html.Span("Sources:", className="text-muted"),
                               html.Ul(items, className="mb-0 ps-3")], className="small", id="profile-sources"))
    return dbc.Card(dbc.CardBody(parts or [html.P("Nothing more is known about it.", className="small mb-0")]),
                    className="shadow-sm mb-3")


def _file_name(source_file: object) -> str:
    """A URL as it is; a local file by its name (the server's folders are nobody's business)."""
    text = str(source_file or "")
    return text if "://" in text else PurePath(text).name or text


def _sources_title(entry: dict) -> str:
    return ", ".join(f"{source}: {rows:,} rows" for source, rows in sorted(entry.get("sources", {}).items()))


def _joined(items: list) -> list:
    out: list = []
    for i, item in enumerate(items):
        if i:
            out.append(" · ")
        out.append(item)
    return out


def _ranked_table(rows: list[list], header: list[str], table_id: str) -> dbc.Table | html.P:
    if not rows:
        return html.P("None in this data.", className="small text-muted mb-0", id=table_id)
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in header])),
                      html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows])],
                     size="sm", striped=True, className="small mb-0", id=table_id, responsive=True)


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "–"


def _people(profile, currency: str) -> list[dbc.Col]:
    """Co-funders and top partners (for a recipient these are one list: its funders, ranked)."""
    total = profile.headline.usd
    partner_rows = [[_link(profile.other, r.value, r.label), compact_usd(r.usd, currency), _share(r.usd, total)]
                    for r in profile.partners.itertuples(index=False)]
    if profile.role == "recipient":
        return [dbc.Col(_card("Its funders, ranked", "Who funds it, largest first; each links to its profile.",
                              _ranked_table(partner_rows, ["Funder", "Amount", "Share"], "profile-partners")),
                        xs=12, className="mb-3")]
    peer_rows = [[_link("funder", r.value, r.label), f"{int(r.shared):,}", compact_usd(r.usd, currency),
                  compact_usd(r.own_usd, currency)] for r in profile.peers.itertuples(index=False)]
    return [
        dbc.Col(_card("Co-funders", "Other funders of its recipients: how many recipients they share, what those "
                      "funders gave them and what this funder gave them.",
                      _ranked_table(peer_rows, ["Funder", "Shared recipients", "Their amount", "Its amount"],
                                    "profile-cofunders")), xs=12, lg=7, className="mb-3"),
        dbc.Col(_card("Top recipients", "Largest first; each links to its profile.",
                      _ranked_table(partner_rows, ["Recipient", "Amount", "Share"], "profile-partners")),
                xs=12, lg=5, className="mb-3"),
    ]


def _card(title: str, note: str | None, body) -> dbc.Card:
    return dbc.Card(dbc.CardBody([html.H3(title, className="h6 mb-1"),
                                  html.P(note, className="small text-muted mb-2") if note else None, body]),
                    className="shadow-sm mb-3 h-100")


def profile_view(profile, currency: str, years_figure: dict, themes_figure: dict, map_figure: dict) -> list:
    """The profile of one organisation (a ``data_sources.profiles.Profile``) with its figures."""
    head = profile.headline
    partners = head.recipients if profile.role == "funder" else head.funders
    partner_word = "Recipients" if profile.role == "funder" else "Funders"
    where = "Where its money goes" if profile.role == "funder" else "Where its money is spent"
    return [
        html.Div([
            dbc.Badge(ROLE_TITLES[profile.role], color="secondary", className="me-2"),
            html.H2(profile.name, className="h4 mb-0 d-inline", id="profile-name"),
        ], className="mb-2"),
        _about(profile, profile.sources),
        dbc.Row([
            _figure("Total amount (counted once)", compact_usd(head.usd, currency)),
            _figure("Records", f"{head.records:,}"),
            _figure("Years", _years_text(profile.years)),
            _figure(partner_word, f"{partners:,}"),
        ]),
        dbc.Row([
            dbc.Col(_card("Amount by year", None, _graph(ids.PROFILE_YEARS, years_figure)),
                    xs=12, lg=6, className="mb-3"),
            dbc.Col(_card("Themes", None, _graph(ids.PROFILE_THEMES, themes_figure)),
                    xs=12, lg=6, className="mb-3"),
        ]),
        dbc.Row([dbc.Col(_card(where, _map_note(head, currency), dcc.Graph(
            id=ids.PROFILE_MAP, figure=map_figure, config=PROFILE_MAP_CONFIG, style={"height": "320px"})),
            xs=12, className="mb-3")]),
        dbc.Row(_people(profile, currency)),
    ]


def _graph(graph_id: str, figure: dict) -> dcc.Graph:
    # A responsive graph takes its container's height: give it the figure's own.
    height = figure.get("layout", {}).get("height") or 260
    return dcc.Graph(id=graph_id, figure=figure, config=GRAPH_CONFIG, style={"height": f"{height}px"})


def _map_note(head, currency: str) -> str | None:
    if head.usd_without_country:
        return f"{compact_usd(head.usd_without_country, currency)} goes to regions or unspecified places (not shown)."
    return None
