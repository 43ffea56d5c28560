"""The Sources page and the page switch: / shows the map, /sources the loads and their reports."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.context import AppContext
from callbacks.pages import page_of
from data_sources import queries
from data_sources.filters import Filters
from data_sources.quality import quality_report
from layouts import ids
from layouts.quality import quality_section
from layouts.sources import REJECTIONS_SHOWN, loads_table

NO_FILTERS = Filters()


def compute_sources(context: AppContext, limit: int = 50):
    loads = queries.recent_loads(context.engine, limit)
    rejected = {}
    if not loads.empty:
        for load_id in loads.loc[loads["records_rejected"] > 0, "load_id"]:
            rejected[int(load_id)] = queries.rejections(context.engine, int(load_id), limit=REJECTIONS_SHOWN)
    report = context.cached("quality", lambda _reader, _f: quality_report(context.engine), NO_FILTERS)
    return [loads_table(loads, rejected), quality_section(report)]


def register(app: Dash, context: AppContext) -> None:
    @app.callback(Output(ids.SOURCES_CONTENT, "children"), Input(ids.URL, "pathname"))
    def show_sources(pathname):
        return compute_sources(context) if page_of(pathname) == "sources" else None
