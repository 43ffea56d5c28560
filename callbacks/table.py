"""The table of filtered rows: the grid asks for pages; the server answers one page at a time.

The grid shows the view's chosen columns (``columns`` in the URL, validated against the canonical
names), links each funder and recipient to its profile and each record to its source where its id
allows, and shows the original amount, currency and rate on hover over the US-dollar amount (and the
display currency's amount when it is not USD). Quick search writes the ``q`` filter to the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import quote

from dash import Dash, Input, Output, State
from dash.exceptions import PreventUpdate

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view, search_for
from callbacks.pages import profile_href
from callbacks.view import register_url_control
from data_sources import fx, queries
from data_sources.filters import MAX_TEXT, FilterError, Filters
from data_sources.view import View, ViewError, canonical_columns
from layouts import ids
from layouts.table import (
    DEFAULT_COLUMNS,
    DISPLAY_AMOUNT,
    FUNDER_HREF,
    RECIPIENT_HREF,
    SOURCE_HREF,
    USD_TIP,
    shown_columns,
    table_grid,
)

GRID_COLUMNS = DEFAULT_COLUMNS
PAGE_BYTES = 100_000  # a page of rows sent to the browser stays under this
# Columns a page reads besides the shown ones: links, the hover text and the display amount need them.
_NEEDED = ("source", "record_id", "source_file", "funder_id", "funder_name", "recipient_id", "recipient_name",
           "amount", "currency", "amount_usd", "fx_rate", "fx_note", "year")
_ID = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")  # an id we are willing to put in a link: no spaces or controls
_IATI_RECORD = re.compile(r"(?P<aid>.+)#[tb][0-9]{1,6}")
_DEMO_IDS = ("XX-DEMO-", "360G-DEMO-")


def source_record_url(source: object, record_id: object) -> str | None:
    """The record's page at its source, where its id has a known form: IATI activities on d-portal,
    360Giving grants on GrantNav, FTS flows on fts.unocha.org; None otherwise (and for demo ids)."""
    if not isinstance(record_id, str) or not isinstance(source, str) or record_id.upper().startswith(_DEMO_IDS):
        return None
    if source == "iati":
        found = _IATI_RECORD.fullmatch(record_id)
        if found is None or not _ID.fullmatch(found["aid"]) or found["aid"].upper().startswith(_DEMO_IDS):
            return None
        return f"https://d-portal.org/ctrack.html#view=act&aid={quote(found['aid'], safe='')}"
    if source == "360giving" and _ID.fullmatch(record_id):
        return f"https://grantnav.threesixtygiving.org/grant/{quote(record_id, safe='')}"
    if source == "ocha_fts" and record_id.isascii() and record_id.isdigit() and len(record_id) <= 12:
        return f"https://fts.unocha.org/flows/{record_id}"
    return None


def party_href(role: str, party_id: object, name: object) -> str | None:
    """The profile link of a row's funder or recipient: by its id, else its name; None when neither."""
    for key in (party_id, name):
        if isinstance(key, str) and key.strip() and len(key) <= 300:
            return profile_href(role, key.strip())
    return None


def usd_tooltip(row: dict) -> str | None:
    """"EUR 1,234 at 1.08 USD/EUR": the original amount behind the US-dollar figure."""
    amount, currency = row.get("amount"), row.get("currency")
    if amount is None or not currency:
        return row.get("fx_note") or None
    original = f"{currency} {amount:,.0f}"
    if row.get("amount_usd") is None:
        return f"{original}: {row.get('fx_note') or 'no US-dollar rate'}"
    rate = row.get("fx_rate")
    if currency == "USD" or rate is None:
        return original
    return f"{original} at {rate:.3g} USD/{currency}"


def display_amount(amount_usd: float | None, year: int | None, factors: dict[int, float]) -> float | None:
    """The US-dollar amount in the display currency at the year's rate (``fx.display_factors``, as the
    totals convert it); ``factors`` empty for USD."""
    if amount_usd is None or not factors:
        return amount_usd
    return amount_usd * fx.display_factor(factors, year)


def page_row(row: dict, shown: Sequence[str], factors: dict[int, float] | None = None) -> dict:
    """A stored row as the grid gets it: the shown columns and the link, hover and display fields."""
    out = {c: row[c] for c in shown}
    out[FUNDER_HREF] = party_href("funder", row["funder_id"], row["funder_name"])
    out[RECIPIENT_HREF] = party_href("recipient", row["recipient_id"], row["recipient_name"])
    out[SOURCE_HREF] = source_record_url(row["source"], row["record_id"])
    out[USD_TIP] = usd_tooltip(row)
    if factors:
        out[DISPLAY_AMOUNT] = display_amount(row["amount_usd"], row["year"], factors)
    return {k: v for k, v in out.items() if v is not None or k in shown}


def fit_page(rows: list[dict], budget: int = PAGE_BYTES) -> list[dict]:
    """The rows with long texts shortened (with an ellipsis) until the page's JSON is under ``budget``
    bytes; the exports hold the full texts."""
    cap = 400
    fitted = rows
    while len(json.dumps(fitted, default=str).encode()) >= budget and cap >= 8:
        fitted = [{k: (v[:cap] + "…" if isinstance(v, str) and len(v) > cap and not k.startswith("_") else v)
                   for k, v in row.items()} for row in rows]
        cap //= 2
    return fitted


def parse_rows_request(request: object, columns: Sequence[str] = GRID_COLUMNS,
                       ) -> tuple[int, int, list[tuple[str, str]]]:
    """(start, end, sort) from the grid's getRowsRequest, validated; ValueError when crafted."""
    if not isinstance(request, dict):
        raise ValueError("rows request must be an object")
    start, end = request.get("startRow"), request.get("endRow")
    if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
        raise ValueError("startRow and endRow must be integers")
    if start < 0 or end <= start or end - start > queries.TABLE_PAGE_MAX:
        raise ValueError(f"a page is 1 to {queries.TABLE_PAGE_MAX} rows")
    sort_model = request.get("sortModel") or []
    if not isinstance(sort_model, list) or len(sort_model) > len(columns):
        raise ValueError("sortModel must be a short list")
    sort = []
    for item in sort_model:
        if not isinstance(item, dict) or item.get("colId") not in columns or item.get("sort") not in (
            "asc", "desc",
        ):
            raise ValueError("sortModel items name a table column and asc or desc")
        sort.append((item["colId"], item["sort"]))
    return start, end, sort


def compute_rows_response(context: AppContext, search: str | None, request: object) -> dict:
    filters, _error = parse_search(search)
    return grid_page(context, filters, parse_view(search), request)


def grid_page(context: AppContext, filters: Filters, view: View, request: object) -> dict:
    """One page of ``filters``' rows for a grid (this table's, a profile's), with the view's columns and
    currency, the link, hover and display fields, under the page budget; ValueError when crafted."""
    shown = shown_columns(view.columns)
    start, end, sort = parse_rows_request(request, shown)
    read = tuple(dict.fromkeys((*shown, *_NEEDED)))
    rows, total = context.reader().table_page(filters, start, end, sort, read)
    factors, _note = fx.display_factors(view.currency)
    return {"rowData": fit_page([page_row(r, shown, factors) for r in rows]), "rowCount": total}


def with_columns(search: str | None, chosen: object) -> str | None:
    """The URL query string with the table's chosen columns; None when the choice is not a non-empty
    list of canonical names or nothing changes. The default set leaves ``columns`` out of the URL."""
    if not isinstance(chosen, list) or not chosen:
        return None
    try:
        columns: tuple[str, ...] | None = canonical_columns(chosen)
    except ViewError:
        return None
    if set(columns) == set(DEFAULT_COLUMNS):
        columns = None
    view = parse_view(search)
    if view.columns == columns:
        return None
    filters, _error = parse_search(search)
    return search_for(filters, view.with_(columns=columns))


def with_quick_search(search: str | None, text: object) -> str | None:
    """The URL query string with the ``q`` filter set to ``text`` (cleared when empty); None when the
    value is not text or nothing changes."""
    if text is not None and not isinstance(text, str):
        return None
    q = (text or "").strip()[:MAX_TEXT] or None
    filters, _error = parse_search(search)
    if filters.q == q:
        return None
    try:
        changed = replace(filters, q=q)
    except FilterError:
        return None
    return search_for(changed, parse_view(search))


def chosen_columns(view: View) -> list[str]:
    """The column choice's value for a view: its columns, else the defaults, in the grid's order."""
    return list(shown_columns(view.columns))


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
        view = parse_view(search)
        count = context.cached("row_count", lambda r, f: r.row_count(f), filters)
        return table_grid(view.columns, view.currency), f"{count:,} rows"

    # An empty or crafted column choice puts the URL's columns back in the control.
    register_url_control(app, ids.TABLE_COLUMN_CHOICE, with_columns, lambda search: chosen_columns(parse_view(search)),
                         restore_refused=True)
    register_url_control(app, ids.TABLE_SEARCH, with_quick_search, lambda search: parse_search(search)[0].q or "")

