"""The About page's figures: what the store holds, per stream, counted once."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.context import AppContext
from callbacks.formatting import compact_usd
from callbacks.pages import page_of
from data_sources import queries
from data_sources.filters import Filters
from layouts import ids
from layouts.about import store_summary

NO_FILTERS = Filters()


def compute_about(context: AppContext):
    summary = context.cached("summary", lambda _reader, _f: queries.summary(context.engine), NO_FILTERS)
    return store_summary(summary, compact_usd)


def register(app: Dash, context: AppContext) -> None:
    @app.callback(Output(ids.ABOUT_SUMMARY, "children"), Input(ids.URL, "pathname"))
    def show_about(pathname):
        return compute_about(context) if page_of(pathname) == "about" else None
