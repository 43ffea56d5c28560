"""The Sources page and the page switch: / shows the map, /sources the loads and their reports."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.context import AppContext
from data_sources import queries
from data_sources.filters import Filters
from data_sources.quality import quality_report
from layouts import ids
from layouts.quality import quality_section
from layouts.sources import REJECTIONS_SHOWN, loads_table

HIDDEN, SHOWN = {"display": "none"}, {}
NO_FILTERS = Filters()


def compute_page_styles(pathname: str | None) -> tuple[dict, dict]:
    on_sources = isinstance(pathname, str) and pathname.rstrip("/").endswith("/sources")
    return (HIDDEN, SHOWN) if on_sources else (SHOWN, HIDDEN)


def compute_sources(context: AppContext, limit: int = 50):
    loads = queries.recent_loads(context.engine, limit)
    rejected = {}
    if not loads.empty:
        for load_id in loads.loc[loads["records_rejected"] > 0, "load_id"]:
            rejected[int(load_id)] = queries.rejections(context.engine, int(load_id), limit=REJECTIONS_SHOWN)
    report = context.cached("quality", lambda _reader, _f: quality_report(context.engine), NO_FILTERS)
    return [loads_table(loads, rejected), quality_section(report)]


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        Output(ids.PAGE_MAIN, "style"),
        Output(ids.PAGE_SOURCES, "style"),
        Output(ids.SOURCES_CONTENT, "children"),
        Input(ids.URL, "pathname"),
    )
    def switch_page(pathname):
        main_style, sources_style = compute_page_styles(pathname)
        content = compute_sources(context) if sources_style is SHOWN else None
        return main_style, sources_style, content
