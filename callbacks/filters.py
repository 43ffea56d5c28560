"""Filter controls <-> URL query string. The URL is the one source of truth for the filter state:
every panel reads ``Filters.from_query_string(url.search)``, so a copied URL restores the view.
"""

from __future__ import annotations

from dataclasses import replace

from dash import ALL, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from callbacks.context import AppContext
from callbacks.map_click import admin1_countries, apply_map_click, settle_drill
from data_sources import queries
from data_sources.filters import FilterError, Filters
from data_sources.view import View, ViewError, join_query
from layouts import ids

CONTROL_IDS = (ids.FUNDER, ids.RECIPIENT, ids.THEME, ids.SECTOR, ids.COUNTRY, ids.SOURCE, ids.FLOW_TYPE)
_CONTROL_ATTRS = ("funders", "recipients", "themes", "sectors", "countries", "sources", "flow_types")
MAX_SEARCH = 100


def controls_to_filters(
    years: list[int] | None, year_bounds: tuple[int, int], controls: dict[str, list[str] | None], keep: Filters
) -> Filters:
    """Filters from the controls' values; filters with no control (e.g. q, min-usd) are kept from ``keep``."""
    values = {}
    for cid, attr in zip(CONTROL_IDS, _CONTROL_ATTRS, strict=True):
        value = controls.get(cid) or ()
        if not isinstance(value, list | tuple):
            raise FilterError(f"{attr}: expected a list of values")
        values[attr] = tuple(value)
    year_from = year_to = None
    if years:
        if not isinstance(years, list | tuple) or len(years) != 2 or not all(
            isinstance(y, int | float) and not isinstance(y, bool) for y in years
        ):
            raise FilterError("years: expected a range of two years")
        low, high = year_bounds
        year_from = int(years[0]) if int(years[0]) > low else None
        year_to = int(years[1]) if int(years[1]) < high else None
    return Filters(**values, year_from=year_from, year_to=year_to, admin1=keep.admin1, min_usd=keep.min_usd, q=keep.q)


def filters_to_controls(filters: Filters, year_bounds: tuple[int, int]) -> tuple[list[int], list[list[str]]]:
    low, high = year_bounds
    years = [max(low, filters.year_from or low), min(high, filters.year_to or high)]
    return years, [list(getattr(filters, attr)) for attr in _CONTROL_ATTRS]


def clicked_bar_value(click_data: dict | None) -> str | None:
    """The filter value a bar chart click carries (its customdata), if it is a short string."""
    try:
        value = click_data["points"][0]["customdata"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def apply_bar_click(filters: Filters, dimension: str, value: str) -> Filters:
    """Filter by the clicked bar; clicking the only selected bar again clears that filter."""
    if dimension == "year":
        if not value.isdigit():
            return filters
        year = int(value)
        same = filters.year_from == year and filters.year_to == year
        return replace(filters, year_from=None if same else year, year_to=None if same else year)
    attr = {"funder": "funders", "recipient": "recipients", "theme": "themes"}[dimension]
    if dimension == "theme" and value.startswith("("):  # "(no theme)" is not a theme to filter by
        return filters
    return replace(filters, **{attr: () if getattr(filters, attr) == (value,) else (value,)})


def remove_filter(filters: Filters, name: str, value: str) -> Filters:
    """Filters without one active value (a chip's x)."""
    return filters.without(name, value)


def active_filters(filters: Filters) -> list[tuple[str, str]]:
    """(name, value) of every active filter, in the URL's order: what the chips show."""
    return [(name, value) for name, values in filters.to_mapping().items() for value in values]


def parse_search(search: str | None) -> tuple[Filters, str | None]:
    """Filters from the URL, or no filters and an error message for a crafted or broken URL."""
    try:
        return Filters.from_query_string(search or ""), None
    except FilterError as exc:
        return Filters(), f"The link's filters were not understood ({exc}); showing everything."


def drill_for_country_choice(filters: Filters, view: View, has_admin1: set[str] | frozenset[str]) -> View:
    """The view after the country dropdown changed: drilled into the one chosen country when it has
    admin-1 areas and the map shows where money is spent; else as it was."""
    if view.basis == "spent" and view.drill is None and len(filters.countries) == 1 \
            and filters.countries[0] in has_admin1:
        return view.with_(drill=filters.countries[0])
    return view


def parse_view(search: str | None) -> View:
    """View settings (currency, map metric, scale, drill-down) from the URL; the defaults for a
    crafted or broken value, so a bad link still shows a page."""
    try:
        return View.from_query_string(search)
    except ViewError:
        return View()


def search_for(filters: Filters, view: View) -> str:
    """The URL query string of a view: its filters, then its view settings."""
    return join_query(filters.to_query_string(), view.to_query_string())


def with_view(search: str | None, **changes: object) -> str | None:
    """The URL query string with these view settings changed; None when a value is not allowed (a
    crafted callback input) or nothing changes."""
    view = parse_view(search)
    try:
        new = view.with_(**changes)
    except (ViewError, TypeError):
        return None
    if new == view:
        return None
    filters, _error = parse_search(search)
    return search_for(filters, new)


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        Output(ids.URL, "search"),
        Output(ids.YEARS, "value"),
        *(Output(cid, "value") for cid in CONTROL_IDS),
        # The searchable dropdowns get options that include their values, or they would drop them.
        *(Output(cid, "options") for cid in ids.SEARCHABLE_DROPDOWNS),
        Output(ids.FILTER_ERROR, "children"),
        Output(ids.FILTER_ERROR, "is_open"),
        Input(ids.URL, "search"),
        Input(ids.YEARS, "value"),
        *(Input(cid, "value") for cid in CONTROL_IDS),
        Input(ids.MAP, "clickData"),
        *(Input(chart_id, "clickData") for chart_id in ids.CHARTS),
        Input({"type": ids.CHIP, "name": ALL, "value": ALL}, "n_clicks"),
        Input(ids.RESET, "n_clicks"),
        State(ids.YEARS, "min"),
        State(ids.YEARS, "max"),
    )
    def sync_filters(search, years, *rest):
        controls = dict(zip(CONTROL_IDS, rest[: len(CONTROL_IDS)], strict=True))
        click_data, *chart_clicks = rest[len(CONTROL_IDS): len(CONTROL_IDS) + 1 + len(ids.CHARTS)]
        _chips, _reset, low, high = rest[len(CONTROL_IDS) + 1 + len(ids.CHARTS):]
        bounds = (int(low), int(high))
        current, error = parse_search(search)
        trigger = ctx.triggered_id
        if trigger in (None, ids.URL):
            # Page load or back/forward: the URL sets the controls.
            years_value, control_values = filters_to_controls(current, bounds)
            return (no_update, years_value, *control_values, *_options(control_values), error, error is not None)
        view = parse_view(search)
        if trigger == ids.RESET:
            filters = Filters()
        else:
            try:
                filters = controls_to_filters(years, bounds, controls, keep=current)
            except FilterError as exc:
                return (no_update,) * (2 + len(CONTROL_IDS) + len(ids.SEARCHABLE_DROPDOWNS)) + (str(exc), True)
            if trigger == ids.MAP:
                # A country click filters to it and drills into its admin-1 areas where there are any;
                # an admin-1 click toggles that area (callbacks.map_click).
                filters, view = apply_map_click(filters, view, click_data, admin1_countries(context))
            elif isinstance(trigger, dict):  # a chip's id (checked first: a dict id cannot be hashed)
                if trigger.get("type") != ids.CHIP or not ctx.triggered or not ctx.triggered[0].get("value"):
                    raise PreventUpdate  # a chip appearing is not a click
                filters = remove_filter(filters, str(trigger.get("name")), str(trigger.get("value")))
            elif trigger in ids.CHARTS:
                value = clicked_bar_value(dict(zip(ids.CHARTS, chart_clicks, strict=True))[trigger])
                if value:
                    filters = apply_bar_click(filters, ids.CHARTS[trigger], value)
        if trigger != ids.MAP:
            view = settle_drill(filters, view)  # a drill whose country filter went goes back to the world
        if trigger == ids.COUNTRY:
            # The keyboard's way into a country's provinces: picking it alone in the dropdown drills in too.
            view = drill_for_country_choice(filters, view, admin1_countries(context))
        years_value, control_values = filters_to_controls(filters, bounds)
        return (search_for(filters, view), years_value, *control_values, *_options(control_values),
                None, False)

    def _options(control_values: list[list[str]]) -> list[list[dict]]:
        by_id = dict(zip(CONTROL_IDS, control_values, strict=True))
        return [
            _with_selected(context, kind, by_id[cid], _top_options(context, kind))
            for cid, kind in ids.SEARCHABLE_DROPDOWNS.items()
        ]

    for control_id, kind in ids.SEARCHABLE_DROPDOWNS.items():
        _register_options(app, context, control_id, kind)

    @app.callback(Output(ids.ACTIVE_FILTERS, "children"), Input(ids.URL, "search"))
    def show_active_filters(search):
        filters, _error = parse_search(search)
        return compute_filter_chips(context, filters)


def compute_filter_chips(context: AppContext, filters: Filters) -> list:
    """One button per active filter value; names shown for organisations given by id."""
    chips = []
    for name, value in active_filters(filters):
        label = value
        if name in ("funder", "recipient", "country"):
            label = context.reader().labels_for(name, [value]).get(value, value)
        chips.append(html.Button(
            [f"{name.replace('-', ' ')}: {label} ", html.Span("×", **{"aria-hidden": "true"})],
            id=ids.chip(name, value), n_clicks=0, className="btn btn-sm btn-outline-primary me-1 mb-1",
            title=f"Remove the filter {name} {label}", **{"aria-label": f"Remove the filter {name} {label}"},
        ))
    return chips


NO_FILTERS = Filters()


def _top_options(context: AppContext, kind: str) -> list[dict]:
    """The largest 50 of a kind: the same for every filter state, so cached per data version only."""
    return context.cached(f"top_options_{kind}", lambda r, _f: r.options(kind, 50), NO_FILTERS)


def _with_selected(context: AppContext, kind: str, selected: list[str], found: list[dict]) -> list[dict]:
    """``found`` plus the selected values it lacks, labelled, so the dropdown can show them."""
    known = {o["value"] for o in found}
    missing = [v for v in selected if v not in known]
    if not missing:
        return found
    labels = context.reader().labels_for(kind, missing)
    return [{"label": labels.get(v, v), "value": v} for v in missing] + found


def _register_options(app: Dash, context: AppContext, control_id: str, kind: str) -> None:
    @app.callback(
        Output(control_id, "options", allow_duplicate=True),
        Input(control_id, "search_value"),
        State(control_id, "value"),
        prevent_initial_call=True,
    )
    def update_options(search, selected):
        if not isinstance(search, str) or not search:
            raise PreventUpdate
        selected = [v for v in (selected or []) if isinstance(v, str)][:50]
        return queries.options_for(context.engine, kind, selected, search[:MAX_SEARCH])
