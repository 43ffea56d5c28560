"""The Export CSV link: the same filters as the view, served by the /export route (streamed)."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.filters import parse_search
from layouts import ids


def export_href(search: str | None, fmt: str = "csv") -> str:
    filters, _error = parse_search(search)
    query = filters.to_query_string()
    return f"/export/{fmt}" + (f"?{query}" if query else "")


def register(app: Dash, _context=None) -> None:
    @app.callback(
        Output(ids.EXPORT_CSV, "href"),
        Output(ids.EXPORT_XLSX, "href"),
        Output(ids.EXPORT_GEOJSON, "href"),
        Input(ids.URL, "search"),
    )
    def update_export_links(search):
        return export_href(search, "csv"), export_href(search, "xlsx"), export_href(search, "geojson")
