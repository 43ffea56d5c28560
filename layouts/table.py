"""The table panel: the grid of filtered rows (pages come from the server) and the export links."""

from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html

from layouts import ids

# Columns the table shows by default (all canonical columns are in the export).
TABLE_COLUMNS = (
    ("year", "Year", 80), ("funder_name", "Funder", 220), ("recipient_name", "Recipient", 220),
    ("title", "Title", 280), ("country_name", "Country", 140), ("region", "Region", 160),
    ("theme", "Theme", 150), ("sector_name", "Sector", 180), ("flow_type", "Flow", 120),
    ("amount", "Amount", 130), ("currency", "Cur.", 70), ("amount_usd", "USD", 130),
    ("geo_level", "Place precision", 120), ("source", "Source", 100), ("record_id", "Record id", 220),
)


def table_grid() -> dag.AgGrid:
    """The table of filtered rows: pages of rows come from the server as the user scrolls or sorts."""
    return dag.AgGrid(
        id=ids.TABLE,
        rowModelType="infinite",
        columnDefs=[
            {"field": f, "headerName": name, "width": width, "sortable": True,
             **({"type": "numericColumn", "valueFormatter": {"function": "d3.format(',.0f')(params.value)"}}
                if f in ("amount", "amount_usd") else {})}
            for f, name, width in TABLE_COLUMNS
        ],
        defaultColDef={"resizable": True, "filter": False},
        dashGridOptions={"cacheBlockSize": 100, "maxBlocksInCache": 5, "rowBuffer": 0,
                         "infiniteInitialRowCount": 1, "tooltipShowDelay": 300},
        style={"height": "420px"},
        className="ag-theme-alpine",
    )


def table_panel() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody([
            html.Div([
                html.H2("Rows", className="h6 mb-0 me-auto"),
                html.Span(id=ids.TABLE_COUNT, className="small text-muted me-3"),
                html.A("Export CSV", id=ids.EXPORT_CSV, href="/export/csv", className="btn btn-primary btn-sm me-1",
                       role="button", download="fundatlas-export.csv"),
                html.A("XLSX", id=ids.EXPORT_XLSX, href="/export/xlsx", className="btn btn-outline-primary btn-sm me-1",
                       role="button", download="fundatlas-export.xlsx", title="Export the filtered rows as XLSX"),
                html.A("GeoJSON", id=ids.EXPORT_GEOJSON, href="/export/geojson",
                       className="btn btn-outline-primary btn-sm", role="button", download="fundatlas-export.geojson",
                       title="Export the filtered rows as GeoJSON points"),
            ], className="d-flex align-items-center mb-2"),
            html.Div(table_grid(), id=ids.TABLE_CONTAINER),
        ]),
        className="shadow-sm mb-3",
    )


