"""Profile pages: /funder/<key> and /recipient/<key> (``data_sources.profiles`` computes; this shows).

The page follows the URL: its path names the organisation, its query string the display currency.
Nothing is computed while another page is shown.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from dash import Dash, Input, Output, State
from dash.exceptions import PreventUpdate

from callbacks.charts import compute_ranking_figure, compute_year_figure
from callbacks.context import AppContext
from callbacks.filters import parse_view, search_for
from callbacks.map import compute_map_figure, shipped_countries
from callbacks.pages import page_of, profile_of
from callbacks.table import grid_page
from data_sources import profiles
from data_sources.filters import FilterError, Filters
from data_sources.view import View
from layouts import ids
from layouts.profile import HIDDEN, not_found, profile_grid, profile_view

SHOWN: dict = {}
PROFILE_MAP_HEIGHT = 320


def profile_target(pathname: str | None) -> tuple[str, str] | None:
    """(role, key) of a profile path whose key a filter takes; None for anything else (an empty or
    over-long key, control characters, a key the filters refuse)."""
    found = profile_of(pathname)
    if found is None:
        return None
    role, key = found
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key):  # NUL and friends: no database takes them
        return None
    try:
        profiles.selection(role, key)
    except FilterError:
        return None
    return role, key


def profile_filters(pathname: str | None) -> Filters | None:
    target = profile_target(pathname)
    return profiles.selection(*target) if target else None


def compute_profile_figures(profile: profiles.Profile, currency: str) -> tuple[dict, dict, dict]:
    years = compute_year_figure(profile.years, currency)
    themes = compute_ranking_figure(profile.themes, currency)
    themes["data"][0]["meta"] = profile.name  # the hover says whose money; these bars filter nothing
    themes["data"][0]["hovertemplate"] = "<b>%{customdata[1]}</b><br>%{text}<extra></extra>"
    world = compute_map_figure(profile.countries, shipped_countries(), currency=currency)
    world["layout"] = {**world["layout"], "height": PROFILE_MAP_HEIGHT, "uirevision": "profile-map"}
    return years, themes, world


def _nothing() -> tuple:
    return HIDDEN, profile_grid(), "", "/export/csv", "/export/xlsx", "/"


def compute_profile_page(context: AppContext, pathname: str | None, search: str | None) -> tuple:
    """(content, records style, a fresh grid, row count text, CSV href, XLSX href, map href)."""
    target = profile_target(pathname)
    found = profile_of(pathname)
    if target is None:
        return (not_found(found[0] if found else None, None), *_nothing())
    role, key = target
    view = parse_view(search)
    currency = view.currency
    filters = profiles.selection(role, key)
    profile = context.cached(f"profile:{role}:{currency}",
                             lambda reader, _f: profiles.compute_profile(reader, role, key, currency), filters)
    if profile is None:
        return (not_found(role, key), *_nothing())
    query = filters.to_query_string()
    content = profile_view(profile, currency, *compute_profile_figures(profile, currency))
    return (content, SHOWN, profile_grid(), f"{profile.row_count:,} rows", f"/export/csv?{query}",
            f"/export/xlsx?{query}", "/" + search_for(filters, replace(view, drill=None)))


def compute_profile_rows(context: AppContext, pathname: str | None, request: object) -> dict:
    """One page of the profile's rows for its grid; ValueError for a crafted request or path."""
    filters = profile_filters(pathname)
    if filters is None:
        raise ValueError("not a profile's path")
    # The main table's page: the same columns, profile links and source links (the default view).
    return grid_page(context, filters, View(), request)


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        Output(ids.PROFILE_CONTENT, "children"),
        Output(ids.PROFILE_RECORDS, "style"),
        Output(ids.PROFILE_TABLE_CONTAINER, "children"),
        Output(ids.PROFILE_TABLE_COUNT, "children"),
        Output(ids.PROFILE_EXPORT_CSV, "href"),
        Output(ids.PROFILE_EXPORT_XLSX, "href"),
        Output(ids.PROFILE_MAP_LINK, "href"),
        # After the page switch has shown the page (its style is this callback's input): plotly sizes a
        # graph drawn in a hidden container at its default width, too wide for a phone.
        Input(ids.PAGE_PROFILE, "style"),
        Input(ids.URL, "search"),
        State(ids.URL, "pathname"),
    )
    def show_profile(_style, search, pathname):
        if page_of(pathname) != "profile":
            raise PreventUpdate
        return compute_profile_page(context, pathname, search)

    @app.callback(
        Output(ids.PROFILE_TABLE, "getRowsResponse"),
        Input(ids.PROFILE_TABLE, "getRowsRequest"),
        State(ids.URL, "pathname"),
    )
    def serve_profile_rows(request, pathname):
        if request is None:
            raise PreventUpdate
        try:
            return compute_profile_rows(context, pathname, request)
        except ValueError:
            raise PreventUpdate from None
