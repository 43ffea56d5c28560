"""The table panel: the grid of filtered rows (pages come from the server), its column choice and quick
search, and the export links (rows, summaries, manifest)."""

from __future__ import annotations

from collections.abc import Sequence

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from data_sources.schema import COLUMN_NAMES
from data_sources.summaries import SUMMARY_BYS, SUMMARY_FORMATS
from layouts import ids

# Columns the table shows by default (all canonical columns are in the export).
TABLE_COLUMNS = (
    ("year", "Year", 80), ("funder_name", "Funder", 220), ("recipient_name", "Recipient", 220),
    ("title", "Title", 280), ("country_name", "Country", 140), ("region", "Region", 160),
    ("theme", "Theme", 150), ("sector_name", "Sector", 180), ("flow_type", "Flow", 120),
    ("amount", "Amount", 130), ("currency", "Cur.", 70), ("amount_usd", "USD", 130),
    ("geo_level", "Place precision", 120), ("source", "Source", 100), ("record_id", "Record id", 220),
)
DEFAULT_COLUMNS = tuple(f for f, _name, _width in TABLE_COLUMNS)
_KNOWN = {f: (name, width) for f, name, width in TABLE_COLUMNS}
NUMERIC = frozenset({"amount", "amount_usd", "fx_rate", "allocation_share", "lat", "lon", "alloc", "load_id"})
# Fields the server adds to each row of a page (never canonical names, so never confused with them).
FUNDER_HREF, RECIPIENT_HREF, SOURCE_HREF, USD_TIP, DISPLAY_AMOUNT = "_fh", "_rh", "_sh", "_tip", "_cur"
LINK_FIELDS = {"funder_name": FUNDER_HREF, "recipient_name": RECIPIENT_HREF, "record_id": SOURCE_HREF}
SUMMARY_LABELS = {"funder": "per funder", "recipient": "per recipient", "place": "per place (country, admin-1)",
                  "year": "per year"}


def column_label(field: str) -> str:
    return _KNOWN[field][0] if field in _KNOWN else field.replace("_", " ").capitalize()


def shown_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    """The grid's columns for a view's choice (None: the defaults): the default columns in their
    order, then the other chosen ones in canonical order."""
    chosen = set(columns or DEFAULT_COLUMNS)
    return tuple(f for f in DEFAULT_COLUMNS if f in chosen) + tuple(
        c for c in COLUMN_NAMES if c in chosen and c not in _KNOWN)


def block_rows(columns: Sequence[str]) -> int:
    """Rows per page the grid asks for: fewer when many columns, so a page stays well under 100 KB."""
    return 100 if len(columns) <= 20 else 50 if len(columns) <= 30 else 25


def column_defs(columns: Sequence[str] | None = None, currency: str = "USD") -> list[dict]:
    defs = []
    number = {"type": "numericColumn", "valueFormatter": {"function": "d3.format(',.0f')(params.value)"}}
    for field in shown_columns(columns):
        col: dict = {"field": field, "headerName": column_label(field), "sortable": True,
                     "width": _KNOWN.get(field, ("", 140))[1]}
        if field in ("amount", "amount_usd"):
            col.update(number)
        elif field in NUMERIC:
            col["type"] = "numericColumn"
        if field == "amount_usd":
            col["tooltipField"] = USD_TIP  # the original amount, currency and rate on hover
        if field in LINK_FIELDS:
            # A React link (assets/fundatlas_table.js): the name is a text child, so HTML in it stays text.
            col["cellRenderer"] = "FundatlasLink"
            col["cellRendererParams"] = {"hrefField": LINK_FIELDS[field]}
        defs.append(col)
        if field == "amount_usd" and currency != "USD":
            defs.append({"field": DISPLAY_AMOUNT, "headerName": f"{currency} (display)", "width": 130,
                         "sortable": False, "headerTooltip": f"The US-dollar amount in {currency} at the year's "
                         "annual rate", **number})
    return defs


def table_grid(columns: Sequence[str] | None = None, currency: str = "USD") -> dag.AgGrid:
    """The table of filtered rows: pages of rows come from the server as the user scrolls or sorts."""
    shown = shown_columns(columns)
    return dag.AgGrid(
        id=ids.TABLE,
        rowModelType="infinite",
        columnDefs=column_defs(columns, currency),
        defaultColDef={"resizable": True, "filter": False},
        dashGridOptions={"cacheBlockSize": block_rows(shown), "maxBlocksInCache": 5, "rowBuffer": 0,
                         "infiniteInitialRowCount": 1, "tooltipShowDelay": 300},
        style={"height": "420px"},
        className="ag-theme-alpine",
    )


def column_options() -> list[dict]:
    return [{"label": f"{column_label(c)} ({c})" if column_label(c) != c else c, "value": c} for c in COLUMN_NAMES]


def _export_menu() -> dbc.DropdownMenu:
    items: list = [dbc.DropdownMenuItem("Manifest of these rows (JSON)", id=ids.EXPORT_MENU_MANIFEST,
                                        href="/export/manifest.json", external_link=True, target="_blank")]
    for fmt in SUMMARY_FORMATS:
        items.append(dbc.DropdownMenuItem(divider=True))
        items.append(dbc.DropdownMenuItem(f"Totals ({fmt.upper()}, counted once)", header=True))
        items += [dbc.DropdownMenuItem(SUMMARY_LABELS[by], id=ids.export_summary(by, fmt),
                                       href=f"/export/summary/{by}.{fmt}", external_link=True)
                  for by in SUMMARY_BYS]
    return dbc.DropdownMenu(items, id=ids.EXPORT_MENU, label="Summaries", size="sm", color="outline-primary",
                            align_end=True, class_name="ms-1",
                            toggle_class_name="btn-sm")


def table_controls() -> html.Div:
    return html.Div([
        html.Div([
            html.Label("Search titles and names", htmlFor=ids.TABLE_SEARCH, className="form-label small mb-0"),
            dcc.Input(id=ids.TABLE_SEARCH, type="search", debounce=0.6, maxLength=200, placeholder="e.g. borehole",
                      className="form-control form-control-sm", autoComplete="off"),
        ], className="me-2", style={"minWidth": "14rem"}),
        html.Div([
            html.Label("Columns", htmlFor=ids.TABLE_COLUMN_CHOICE, className="form-label small mb-0"),
            dcc.Dropdown(id=ids.TABLE_COLUMN_CHOICE, options=column_options(), value=list(DEFAULT_COLUMNS),
                         multi=True, clearable=False, placeholder="Choose columns",
                         className="small"),
        ], className="flex-grow-1"),
    ], className="d-flex align-items-end mb-2 flex-wrap gap-1")


def table_panel() -> dbc.Card:
    return dbc.Card(
        dbc.CardBody([
            html.Div([
                html.H2("Rows", className="h6 mb-0 me-auto"),
                html.Span(id=ids.TABLE_COUNT, className="small text-muted me-3"),
                html.A("Export CSV", id=ids.EXPORT_CSV, href="/export/csv", className="btn btn-primary btn-sm me-1",
                       role="button", download="fundatlas-export.csv",
                       title="Export the filtered rows (the columns chosen) as CSV"),
                html.A("Manifest", id=ids.EXPORT_MANIFEST, href="/export/manifest.json",
                       className="btn btn-link btn-sm me-1", role="button", target="_blank",
                       title="What the export holds: filters, source files and loads, exchange rates, duplicate "
                             "rules"),
                html.A("XLSX", id=ids.EXPORT_XLSX, href="/export/xlsx", className="btn btn-outline-primary btn-sm me-1",
                       role="button", download="fundatlas-export.xlsx", title="Export the filtered rows as XLSX"),
                html.A("GeoJSON", id=ids.EXPORT_GEOJSON, href="/export/geojson",
                       className="btn btn-outline-primary btn-sm", role="button", download="fundatlas-export.geojson",
                       title="Export the filtered rows as GeoJSON points"),
                _export_menu(),
            ], className="d-flex align-items-center mb-2 flex-wrap"),
            table_controls(),
            html.Div(table_grid(), id=ids.TABLE_CONTAINER),
        ]),
        className="shadow-sm mb-3",
    )
