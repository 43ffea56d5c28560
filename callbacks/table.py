"""The table of filtered rows: the grid asks for pages; the server answers one page at a time."""

from __future__ import annotations

from dash import Dash, Input, Output, State
from dash.exceptions import PreventUpdate

from callbacks.context import AppContext
from callbacks.filters import parse_search
from data_sources import queries
from layouts import ids
from layouts.table import TABLE_COLUMNS, table_grid

GRID_COLUMNS = tuple(f for f, _name, _width in TABLE_COLUMNS)


def parse_rows_request(request: object) -> tuple[int, int, list[tuple[str, str]]]:
    """(start, end, sort) from the grid's getRowsRequest, validated; ValueError when crafted."""
    if not isinstance(request, dict):
        raise ValueError("rows request must be an object")
    start, end = request.get("startRow"), request.get("endRow")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise ValueError("startRow and endRow must be integers")
    if start < 0 or end <= start or end - start > queries.TABLE_PAGE_MAX:
        raise ValueError(f"a page is 1 to {queries.TABLE_PAGE_MAX} rows")
    sort_model = request.get("sortModel") or []
    if not isinstance(sort_model, list) or len(sort_model) > len(GRID_COLUMNS):
        raise ValueError("sortModel must be a short list")
    sort = []
    for item in sort_model:
        if not isinstance(item, dict) or item.get("colId") not in GRID_COLUMNS or item.get("sort") not in (
            "asc", "desc",
        ):
            raise ValueError("sortModel items name a table column and asc or desc")
        sort.append((item["colId"], item["sort"]))
    return start, end, sort


def compute_rows_response(context: AppContext, search: str | None, request: object) -> dict:
    filters, _error = parse_search(search)
    start, end, sort = parse_rows_request(request)
    rows, total = context.reader().table_page(filters, start, end, sort, GRID_COLUMNS)
    return {"rowData": rows, "rowCount": total}


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        Output(ids.TABLE, "getRowsResponse"),
        Input(ids.TABLE, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    def serve_rows(request, search):
        if request is None:
            raise PreventUpdate
        try:
            return compute_rows_response(context, search, request)
        except ValueError:
            raise PreventUpdate from None

    @app.callback(
        Output(ids.TABLE_CONTAINER, "children"),
        Output(ids.TABLE_COUNT, "children"),
        Input(ids.URL, "search"),
    )
    def reset_table(search):
        # A fresh grid drops the old filter's cached pages and asks again from row 0.
        filters, _error = parse_search(search)
        return table_grid(), f"{context.cached('row_count', lambda r, f: r.row_count(f), filters):,} rows"
