"""View settings <-> URL: the display currency (and, through the map panel, the map's metric, scale and
drill-down) live in the query string beside the filters, so a copied link restores the whole view."""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, no_update

from callbacks.filters import parse_search, parse_view, search_for
from data_sources.view import CURRENCIES
from layouts import ids


def with_currency(search: str | None, currency: object) -> str | None:
    """The URL query string with the display currency set; None when the value is not allowed or
    nothing changes (a crafted callback input changes nothing)."""
    if currency not in CURRENCIES:
        return None
    view = parse_view(search)
    if view.currency == currency:
        return None
    filters, _error = parse_search(search)
    return search_for(filters, view.with_(currency=currency))


def register(app: Dash, _context=None) -> None:
    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Output(ids.CURRENCY, "value"),
        Input(ids.CURRENCY, "value"),
        Input(ids.URL, "search"),
        State(ids.URL, "search"),
        prevent_initial_call="initial_duplicate",
    )
    def sync_currency(currency, _search_input, search):
        if ctx.triggered_id == ids.CURRENCY:
            new = with_currency(search, currency)
            return (no_update if new is None else new), no_update
        # Page load or a new URL: the URL sets the control.
        return no_update, parse_view(search).currency
