"""The export links: the same filters as the view (and its chosen columns and display currency),
served by the routes of ``callbacks.downloads`` (rows streamed; summaries; the manifest)."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.downloads import MANIFEST_PATH
from callbacks.filters import parse_search, parse_view
from data_sources.summaries import SUMMARY_BYS, SUMMARY_FORMATS
from data_sources.view import View, join_query
from layouts import ids

SUMMARY_LINKS = tuple((by, fmt) for fmt in SUMMARY_FORMATS for by in SUMMARY_BYS)


def export_query(search: str | None) -> str:
    """The query string the exports take: the filters, the chosen columns and the display currency
    (what the map shows, its metric, scale and drill-down, are not the export's business)."""
    filters, _error = parse_search(search)
    view = parse_view(search)
    return join_query(filters.to_query_string(), View(currency=view.currency, columns=view.columns)
                      .to_query_string()).removeprefix("?")


def export_href(search: str | None, fmt: str = "csv") -> str:
    query = export_query(search)
    return f"/export/{fmt}" + (f"?{query}" if query else "")


def summary_href(search: str | None, by: str, fmt: str) -> str:
    query = export_query(search)
    return f"/export/summary/{by}.{fmt}" + (f"?{query}" if query else "")


def manifest_href(search: str | None) -> str:
    query = export_query(search)
    return MANIFEST_PATH + (f"?{query}" if query else "")


def compute_export_links(search: str | None) -> tuple[str, ...]:
    """Every export link's href, in the order of the callback's outputs."""
    return (export_href(search, "csv"), export_href(search, "xlsx"), export_href(search, "geojson"),
            manifest_href(search), manifest_href(search),
            *(summary_href(search, by, fmt) for by, fmt in SUMMARY_LINKS))


def register(app: Dash, _context=None) -> None:
    @app.callback(
        Output(ids.EXPORT_CSV, "href"),
        Output(ids.EXPORT_XLSX, "href"),
        Output(ids.EXPORT_GEOJSON, "href"),
        Output(ids.EXPORT_MANIFEST, "href"),
        Output(ids.EXPORT_MENU_MANIFEST, "href"),
        *(Output(ids.export_summary(by, fmt), "href") for by, fmt in SUMMARY_LINKS),
        Input(ids.URL, "search"),
    )
    def update_export_links(search):
        return compute_export_links(search)
