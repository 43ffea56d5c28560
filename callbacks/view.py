"""View settings <-> URL: the display currency (and, through the map panel, the map's metric, scale and
drill-down) live in the query string beside the filters, so a copied link restores the whole view."""

from __future__ import annotations

from collections.abc import Callable

from dash import Dash, Input, Output, State, ctx, no_update

from callbacks.filters import parse_view, with_view
from layouts import ids


def register_url_control(app: Dash, control_id: str, write: Callable[[str | None, object], str | None],
                         read: Callable[[str | None], object], restore_refused: bool = False) -> None:
    """A control that mirrors part of the URL: a change writes the URL (``write(search, value)``: the new
    query string, or None when the value is refused or changes nothing), and a new URL (page load,
    back/forward, a link) sets the control (``read(search)``). ``restore_refused``: a refused value puts
    the URL's value back in the control (a choice that may not be empty)."""
    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Output(control_id, "value"),
        Input(control_id, "value"),
        Input(ids.URL, "search"),
        State(ids.URL, "search"),
        prevent_initial_call="initial_duplicate",
    )
    def sync(value, _search_input, search):
        if ctx.triggered_id == control_id:
            new = write(search, value)
            if new is None:
                return no_update, (read(search) if restore_refused else no_update)
            return new, no_update
        return no_update, read(search)


def register(app: Dash, _context=None) -> None:
    register_url_control(app, ids.CURRENCY, lambda search, value: with_view(search, currency=value),
                         lambda search: parse_view(search).currency)
