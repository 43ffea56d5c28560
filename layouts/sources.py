"""The Sources page: which files and loads feed the map, when, with counts and rejections."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
from dash import html

from layouts import ids

STATUS_COLOURS = {"succeeded": "success", "failed": "danger", "replaced": "secondary", "running": "warning"}
REJECTIONS_SHOWN = 50


def sources_panel() -> html.Div:
    return html.Div(
        [
            html.H2("Sources and loads", className="h5"),
            html.P(
                "Every file or URL loaded into this store, newest first. A new version of a file replaces its "
                "rows (the old load shows as replaced); a failed load changed nothing. Rejected records are listed "
                "with the field and the reason; download a load's full report as CSV.",
                className="small text-muted",
            ),
            html.Div(id=ids.SOURCES_CONTENT),
        ],
        id=ids.PAGE_SOURCES,
        style={"display": "none"},
    )


def _when(value) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _rejections_block(load_id: int, rejected: pd.DataFrame, count: int) -> html.Details:
    items = [
        html.Tr([html.Td(r.record_id), html.Td(r.field), html.Td(r.reason)])
        for r in rejected.head(REJECTIONS_SHOWN).itertuples()
    ]
    more = f" (first {REJECTIONS_SHOWN} shown)" if count > REJECTIONS_SHOWN else ""
    return html.Details([
        html.Summary(f"{count:,} rejected records{more}"),
        dbc.Table([html.Thead(html.Tr([html.Th("record"), html.Th("field"), html.Th("reason")])),
                   html.Tbody(items)], size="sm", bordered=False, className="small mt-1"),
        html.A("Download the full report (CSV)", href=f"/report/{load_id}.csv", className="small"),
    ])


def loads_table(loads: pd.DataFrame, rejections: dict[int, pd.DataFrame]) -> html.Div:
    """A table of loads; text goes in as component children, so it is escaped, never run as HTML."""
    if loads.empty:
        return html.P("Nothing loaded yet: run `fundatlas load FILE` or `fundatlas demo`.")
    header = html.Thead(html.Tr([html.Th(h) for h in (
        "load", "file or URL", "format", "status", "read", "stored rows", "rejected", "finished", "message",
    )]))
    rows = []
    for load in loads.itertuples():
        status = dbc.Badge(load.status, color=STATUS_COLOURS.get(load.status, "light"))
        message: list = [load.message or ""]
        if load.records_rejected:
            message.append(_rejections_block(int(load.load_id), rejections.get(int(load.load_id), pd.DataFrame(
                columns=["record_id", "field", "reason"])), int(load.records_rejected)))
        rows.append(html.Tr([
            html.Td(int(load.load_id)), html.Td(load.source_file, className="text-break"), html.Td(load.format),
            html.Td(status), html.Td(f"{int(load.records_read):,}"), html.Td(f"{int(load.rows_stored):,}"),
            html.Td(f"{int(load.records_rejected):,}"), html.Td(_when(load.finished_at)),
            html.Td(message, className="small"),
        ]))
    return dbc.Table([header, html.Tbody(rows)], striped=True, hover=True, responsive=True, size="sm",
                     className="small")
