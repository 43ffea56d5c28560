"""The map: countries (or a drilled country's admin-1 areas) coloured by a metric, point cells on top,
and beside it the money no country holds and the share of money by place precision.

No tiles, topojson or scripts come from the web: the country shapes are the vendored Natural
Earth GeoJSON, which the browser fetches once from this server (``/assets/countries.geojson``;
plotly.js keeps it by URL), so a map update carries only codes and values. A drilled country's
admin-1 shapes (from ``fundatlas boundaries add``) go inline, for that one country only. Every
``geo.show*`` layer is off, and the map's ``topojsonURL`` points at the local copy.

Place basis (``View.basis``): by default a row's money sits where it is spent (``country_iso3``); with
``based`` the world map colours the countries its recipients are based in (``recipient_country_iso3``),
the money whose recipient's country is not stated is summed in the note, points are hidden and clicks
change nothing (the country filter and the admin-1 drill-down are places of spending).

Colours: viridis (colour-blind safe, reversed so more is darker), on a log or a quantile scale, with
a grey band below it for no value (no funding, or no population figure for per-capita). The colour
bar's ticks read in the display currency or in counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, ctx, html, no_update
from plotly.colors import sample_colorscale

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view, search_for, with_view
from callbacks.formatting import SYMBOLS, compact_usd
from callbacks.map_click import admin1_countries, go_to_world
from data_sources import geography, map_views, queries
from data_sources.filters import Filters
from data_sources.view import METRICS, View
from layouts import ids

COLORSCALE = "Viridis_r"
NO_FUNDING_COLOUR = "#e9ecef"
OUTLINE_COLOUR = "#f8f9fa"  # countries around a drilled one
POINT_COLOUR = "#e8590c"
COUNTRIES_GEOJSON_URL = "/assets/countries.geojson"
MONEY_METRICS = ("usd", "per_capita")
PRECISION_LABELS = {"point": "exact point", "admin2": "district (admin-2)", "admin1": "province (admin-1)",
                    "country": "country only", "region": "region only", "unknown": "unknown"}


def _colorscale(no_value_band: float) -> list[list]:
    """Viridis for values, with a grey band at the bottom for shapes with no value."""
    steps = sample_colorscale(COLORSCALE, [i / 9 for i in range(10)])
    scale = [[0.0, NO_FUNDING_COLOUR], [no_value_band, NO_FUNDING_COLOUR]]
    scale += [[no_value_band + (1 - no_value_band) * i / 9, colour] for i, colour in enumerate(steps)]
    return scale


@cache
def shipped_countries() -> pd.DataFrame:
    """iso3 and name of every shape in the shipped boundaries (read once)."""
    features = geography.load_countries_geojson()["features"]
    return pd.DataFrame({
        "iso3": [f["id"] for f in features],
        "shape_name": [f.get("properties", {}).get("name") or f["id"] for f in features],
    })


# --- values, scales and labels ------------------------------------------------------------------


def format_value(value: float, metric: str, currency: str = "USD") -> str:
    """A metric's value as people read it: money in the display currency, else a count."""
    if value is None or not math.isfinite(value):
        return "–"
    if metric == "usd":
        return compact_usd(value, currency)
    if metric == "per_capita":
        if abs(value) >= 100:
            return compact_usd(value, currency)
        symbol = SYMBOLS.get(currency, currency + " ")
        return f"{symbol}{value:,.2f}" if abs(value) >= 0.01 else f"{symbol}{value:.2g}"
    if value >= 10_000:
        return compact_usd(value, "").replace(" ", "")  # 12.3k, 4.5M without a symbol
    return f"{value:,.0f}"


def metric_values(frame: pd.DataFrame, metric: str, population: dict[str, int] | None = None,
                  key: str = "iso3") -> np.ndarray:
    """Each row's value of ``metric`` (NaN where it has none: no money, or no population figure)."""
    if metric == "per_capita":
        pops = frame[key].map(population or {}).astype(float).to_numpy()
        usd = frame["usd"].fillna(0.0).astype(float).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pops > 0, usd / pops, np.nan)
    return frame[metric].astype(float).to_numpy()


@dataclass(frozen=True)
class ColourScale:
    z: list[float]  # per shape; shapes with no value sit in the grey band
    zmin: float
    zmax: float
    band: float  # top of the grey band, as a fraction of [zmin, zmax]
    tickvals: list[float]
    ticks: list[float]  # the values the ticks stand for (first: none)


def colour_scale(values: np.ndarray, scale: str) -> ColourScale:
    """z values for ``values`` (positive and finite ones coloured) on a log or a quantile scale."""
    values = np.asarray(values, dtype=float)
    has = np.isfinite(values) & (values > 0)
    if scale == "quantile":
        gap, low, high = 0.1, 0.0, 1.0
        z = np.zeros(len(values))
        if has.sum() > 1:
            ranks = pd.Series(values[has]).rank(method="average").to_numpy()
            z[has] = (ranks - 1) / (has.sum() - 1)
        quantiles = [0.0, 0.25, 0.5, 0.75, 1.0]
        tickvals = quantiles if has.any() else []
        ticks = [float(np.quantile(values[has], q, method="inverted_cdf")) for q in quantiles] if has.any() else []
    else:
        gap = 0.5
        if has.any():
            logs = np.log10(values[has])
            low, high = math.floor(float(logs.min())), math.ceil(float(logs.max()))
        else:
            low, high = 3, 6
        high = max(high, low + 1)
        z = np.zeros(len(values))
        z[has] = np.log10(values[has])
        decades = list(range(low, high + 1))
        tickvals = [float(t) for t in decades]
        if len(decades) <= 3:  # a narrow range: 1-3-10 ticks, so the bar still reads
            tickvals = sorted(tickvals + [t + math.log10(3) for t in decades[:-1]])
        ticks = [10.0**t for t in tickvals]
    none_value = low - 2 * gap
    z = np.where(has, z, none_value)
    return ColourScale(z.tolist(), none_value - gap, float(high), 2 * gap / (high - low + 3 * gap),
                       [float(none_value), *tickvals], [float("nan"), *ticks])


def colorbar(colours: ColourScale, metric: str, currency: str, none_label: str = "none") -> dict:
    title = {"usd": currency, "per_capita": f"{currency} per person"}.get(metric, METRICS[metric])
    ticktext = [none_label] + [format_value(v, metric, currency) for v in colours.ticks[1:]]
    return {"title": {"text": title, "side": "right"}, "tickvals": colours.tickvals, "ticktext": ticktext,
            "thickness": 12, "len": 0.8,
            # Inside the plot's right edge, so a phone-width map does not cut the labels off.
            "x": 0.995, "xanchor": "right", "bgcolor": "rgba(255,255,255,0.7)"}


def _figures_text(frame: pd.DataFrame, currency: str) -> pd.Series:
    return (frame["usd"].map(lambda v: compact_usd(v, currency)) + "<br>"
            + frame["records"].fillna(0).astype(int).map("{:,}".format) + " records · "
            + frame["funders"].fillna(0).astype(int).map("{:,}".format) + " funders · "
            + frame["recipients"].fillna(0).astype(int).map("{:,}".format) + " recipients")


def _hover_texts(frame: pd.DataFrame, values: np.ndarray, metric: str, currency: str) -> list[str]:
    has_money = frame["usd"].fillna(0.0).to_numpy() > 0
    texts = np.where(has_money, _figures_text(frame, currency), "no recorded funding for these filters")
    if metric == "per_capita":
        per = [f"<br>{format_value(v, metric, currency)} per person" if math.isfinite(v) else
               "<br>no population figure" for v in values]
        texts = np.array([t + p for t, p in zip(texts.tolist(), per, strict=True)])
    return texts.tolist()


def _base_layout() -> dict:
    return {
        "geo": {"visible": False, "projection": {"type": "natural earth"}, "showframe": False,
                "lataxis": {"range": [-58, 85]}, "bgcolor": "rgba(0,0,0,0)"},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0}, "paper_bgcolor": "rgba(0,0,0,0)", "dragmode": False,
        "clickmode": "event", "uirevision": "map", "showlegend": False,
    }


# --- the world ----------------------------------------------------------------------------------


def compute_map_figure(
    totals: pd.DataFrame,
    countries: pd.DataFrame,
    selected: tuple[str, ...] = (),
    geojson: str | dict = COUNTRIES_GEOJSON_URL,
    metric: str = "usd",
    scale: str = "log",
    currency: str = "USD",
    population: dict[str, int] | None = None,
    basis: str = "spent",
) -> dict:
    """Choropleth of ``totals`` (iso3, name, usd, records, funders, recipients) coloured by ``metric``;
    ``basis`` says whose countries they are (where the money is spent, or where recipients are based).

    One trace holds every shipped country (``countries``: iso3, shape_name), so the outlines always
    show: countries without a value sit in a grey band below the scale.
    """
    frame = countries.merge(totals, on="iso3", how="left")
    frame["usd"] = frame["usd"].fillna(0.0)
    for column in ("records", "funders", "recipients"):
        frame[column] = frame[column].fillna(0)
    values = metric_values(frame, metric, population if population is not None else map_views.population())
    colours = colour_scale(values, scale)
    names = frame["name"].fillna(frame["shape_name"]).astype(str)
    texts = _hover_texts(frame, values, metric, currency)
    selected_set = set(selected)
    iso3 = frame["iso3"].tolist()
    # A plain plotly dict (go.Figure validation would cost more than the whole aggregate).
    trace = {
        "type": "choropleth", "geojson": geojson, "locations": iso3, "z": colours.z, "featureidkey": "id",
        "colorscale": _colorscale(colours.band), "zmin": colours.zmin, "zmax": colours.zmax,
        "customdata": [[name, text, "country"] for name, text in zip(names.tolist(), texts, strict=True)],
        "marker": {"line": {"color": ["#d62728" if code in selected_set else "#ffffff" for code in iso3],
                            "width": [2.0 if code in selected_set else 0.4 for code in iso3]}},
        "colorbar": colorbar(colours, metric, currency),
        "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>",
        "name": f"{METRICS[metric]} by country" if basis == "spent" else f"{METRICS[metric]} by recipient's country",
    }
    return {"data": [trace], "layout": _base_layout()}


# --- a drilled country --------------------------------------------------------------------------


def compute_admin1_figure(
    areas: pd.DataFrame,
    shapes: dict,
    iso3: str,
    countries: pd.DataFrame,
    selected: tuple[str, ...] = (),
    metric: str = "usd",
    scale: str = "log",
    currency: str = "USD",
) -> dict:
    """The drilled country: its admin-1 ``shapes`` (inline) coloured by ``areas`` (code, usd, records,
    funders, recipients), the countries around it as plain outlines, the view fitted to the country.
    Admin-1 areas have no population figure: per capita shows every area as "no population figure"."""
    codes = [str(f["id"]) for f in shapes["features"]]
    names = [str((f.get("properties") or {}).get("name") or f["id"]) for f in shapes["features"]]
    frame = pd.DataFrame({"code": codes, "name": names}).merge(areas, on="code", how="left")
    frame["usd"] = frame["usd"].fillna(0.0)
    for column in ("records", "funders", "recipients"):
        frame[column] = frame[column].fillna(0)
    values = metric_values(frame, metric, {}, key="code")
    colours = colour_scale(values, scale)
    texts = _hover_texts(frame, values, metric, currency)
    selected_set = set(selected)
    outline_names = countries["shape_name"].astype(str).tolist()
    outline = {
        "type": "choropleth", "geojson": COUNTRIES_GEOJSON_URL, "locations": countries["iso3"].tolist(),
        "z": [0] * len(countries), "featureidkey": "id", "showscale": False,
        "colorscale": [[0, OUTLINE_COLOUR], [1, OUTLINE_COLOUR]], "zmin": 0, "zmax": 1,
        "marker": {"line": {"color": "#adb5bd", "width": 0.5}},
        "customdata": [[name, "click to show it", "country"] for name in outline_names],
        "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>", "name": "countries",
    }
    trace = {
        "type": "choropleth", "geojson": shapes, "locations": codes, "z": colours.z, "featureidkey": "id",
        "colorscale": _colorscale(colours.band), "zmin": colours.zmin, "zmax": colours.zmax,
        "customdata": [[name, text, "admin1"] for name, text in zip(names, texts, strict=True)],
        "marker": {"line": {"color": ["#d62728" if c in selected_set else "#ffffff" for c in codes],
                            "width": [2.5 if c in selected_set else 0.6 for c in codes]}},
        "colorbar": colorbar(colours, metric, currency, "no population figure" if metric == "per_capita"
                             else "none"),
        "hovertemplate": "<b>%{customdata[0]}</b><br>%{customdata[1]}<extra></extra>",
        "name": f"{METRICS[metric]} by admin-1 area",
    }
    layout = _base_layout()
    box = map_views.bounds(shapes)
    if box is not None:
        minx, miny, maxx, maxy = box
        pad = max(maxx - minx, maxy - miny) * 0.08 + 0.2
        layout["geo"] = {**layout["geo"], "projection": {"type": "mercator"},
                         "lonaxis": {"range": [minx - pad, maxx + pad]}, "lataxis": {"range": [miny - pad, maxy + pad]}}
    layout["uirevision"] = f"map-{iso3}"
    return {"data": [outline, trace], "layout": layout}


# --- points -------------------------------------------------------------------------------------


def compute_points_trace(capped: map_views.Capped, size: float, currency: str = "USD") -> dict | None:
    """Grid cells of geocoded rows as markers, area by money; hover: rows, money, place precision."""
    cells = capped.cells
    if cells.empty:
        return None
    usd = cells["usd"].to_numpy(dtype=float)
    top = float(usd.max()) if len(usd) and usd.max() > 0 else 1.0
    biggest = 26 if size < map_views.WORLD_CELL else 16  # smaller on the world map, where cells crowd
    sizes = (4 + (biggest - 4) * np.sqrt(np.clip(usd, 0, None) / top)).round(1)  # area grows with money
    km = round(size * 111)
    texts = [f"{rows:,} allocation{'s' if rows != 1 else ''} · {compact_usd(value, currency)}<br>"
             f"place precision: point (grouped in ~{km} km cells)"
             for rows, value in zip(cells["rows"].tolist(), usd.tolist(), strict=True)]
    return {
        "type": "scattergeo", "lat": cells["lat"].round(4).tolist(), "lon": cells["lon"].round(4).tolist(),
        "mode": "markers", "name": "geocoded points",
        "marker": {"size": sizes.tolist(), "color": POINT_COLOUR, "opacity": 0.75,
                   "line": {"color": "#ffffff", "width": 0.6}},
        "customdata": [[text, "point"] for text in texts],
        "hovertemplate": "%{customdata[0]}<extra></extra>",
        # On the world map the markers sit on the countries: let hovers and clicks reach the country
        # below (a click drills in), and give the markers' details once drilled.
        **({"hoverinfo": "skip", "hovertemplate": None} if size >= map_views.WORLD_CELL else {}),
    }


# --- beside the map -----------------------------------------------------------------------------


SPENT_NOTE = " (where the money is spent)"  # the lists' headings on the map of where recipients are based


def compute_regions(regions: pd.DataFrame, currency: str = "USD", note: str = "") -> list:
    """Money no country holds, ranked (never silently left off the map)."""
    if regions.empty:
        return []
    items = [html.Li([html.Span(str(r.region)), " — ", html.Strong(compact_usd(float(r.usd), currency)),
                      html.Span(f" ({int(r.rows):,} rows)", className="text-muted")])
             for r in regions.itertuples(index=False)]
    return [html.H3("Money no country holds (regional or global)" + note, className="h6 mt-2"),
            html.Ol(items, className="ps-3 mb-0")]


def compute_precision(shares: pd.DataFrame, note: str = "") -> list:
    """Share of the money by place precision: how exactly the rows say where it goes."""
    if shares.empty or float(shares["usd"].sum()) <= 0:
        return []
    items = []
    for r in shares.itertuples(index=False):
        percent = 100 * float(r.share)
        items.append(html.Li([
            html.Span(PRECISION_LABELS.get(str(r.geo_level), str(r.geo_level)), className="me-1"),
            html.Span(f"{percent:.0f}%" if percent >= 1 or percent == 0 else "<1%", className="fw-bold"),
            html.Div(html.Div(style={"width": f"{percent:.1f}%", "height": "6px", "background": "#440154"}),
                     style={"background": NO_FUNDING_COLOUR, "height": "6px"}, className="mb-1",
                     **{"aria-hidden": "true"}),
        ]))
    return [html.H3("Share of money by place precision" + note, className="h6 mt-2"),
            html.Ul(items, className="list-unstyled mb-0")]


def compute_map_note(headline: queries.Headline, capped: map_views.Capped | None, currency: str = "USD",
                     drilled: str | None = None, unplaced_usd: float = 0.0, unstated_usd: float | None = None) -> str:
    """The note under the map; ``unstated_usd`` (not None: the map of where recipients are based) is the
    money whose recipient's country the sources do not state."""
    if unstated_usd is not None:
        parts = ["Countries where the recipients are based, where the source says so."]
        if unstated_usd > 0:
            parts.append(f"{compact_usd(unstated_usd, currency)}: recipient's country not stated.")
        if headline.amounts_without_usd:
            parts.append(f"{headline.amounts_without_usd:,} rows have no USD value (no exchange rate known).")
        parts.append("Clicks do not filter here: switch to where the money is spent to filter by a country.")
        return " ".join(parts)
    parts = []
    if headline.usd_without_country and not drilled:
        parts.append(f"{compact_usd(headline.usd_without_country, currency)} goes to regions or unspecified "
                     "places (listed below the map).")
    if drilled and unplaced_usd > 0:
        parts.append(f"{compact_usd(unplaced_usd, currency)} in this country is not placed in an area.")
    if headline.amounts_without_usd:
        parts.append(f"{headline.amounts_without_usd:,} rows have no USD value (no exchange rate known).")
    if capped is not None and capped.dropped_cells:
        parts.append(f"The {capped.dropped_cells:,} smallest point cells ({capped.dropped_rows:,} rows, "
                     f"{compact_usd(capped.dropped_usd, currency)}) are not drawn.")
    parts.append("Click an area to filter by it; click it again to clear." if drilled else
                 "Click a country to filter by it (or to see its provinces, where loaded); click it again to clear.")
    return " ".join(parts)


def compute_title(view: View, country_name: str | None) -> str:
    what = {"usd": f"Where the money goes: {view.currency}", "per_capita": f"{view.currency} per person"}.get(
        view.metric, METRICS[view.metric])
    if view.basis == "based":
        what = {"usd": f"Where the recipients are based: {view.currency}"}.get(view.metric, what)
        return f"{what} by recipient's country"
    return f"{what} by province in {country_name}" if country_name else f"{what} by country"


def with_map_view(search: str | None, metric: object = None, scale: object = None,
                  basis: object = None) -> str | None:
    """The URL with the map's metric, scale or place basis set; None when the value is not allowed or
    nothing changes. Going to where recipients are based leaves a drill-down (its filters stay)."""
    if metric is not None:
        return with_view(search, metric=metric)
    if scale is not None:
        return with_view(search, scale=scale)
    if basis is not None:
        return with_view(search, basis=basis, drill=None)
    return None


def world_search(search: str | None) -> str | None:
    """The URL after the breadcrumb's "World"; None when not drilled."""
    view = parse_view(search)
    if view.drill is None:
        return None
    filters, _error = parse_search(search)
    return search_for(*go_to_world(filters, view))


# --- callbacks ----------------------------------------------------------------------------------


def map_outputs(context: AppContext, search: str | None) -> tuple:
    """Everything the map panel shows for a URL (figure, note, crumb, world button, regions, precision, title)."""
    filters, _error = parse_search(search)
    view = parse_view(search)
    currency = view.currency
    drill = view.drill
    based = view.basis == "based"
    shapes = None
    if drill is not None and drill in admin1_countries(context):
        shapes = context.cached(f"map:admin1_shapes:{drill}", lambda r, _f: map_views.admin1_shapes(r.engine, drill),
                                Filters())
    if shapes is None:
        drill = None
    countries = shipped_countries()
    size = map_views.cell_size(drill)
    point_filters = replace(filters, countries=(drill,)) if drill else filters
    capped = None
    if not based:  # points are places of spending
        cells = context.cached(f"map:cells:{size}:{currency}",
                               lambda r, f: map_views.point_cells_any(r, f, size, currency), point_filters)
        capped = map_views.cap_cells(cells)
    unplaced = 0.0
    unstated = None
    if based:
        # Every filter holds, the country filter too: money spent there, by where its recipients are based.
        totals = context.cached(f"country_totals:{currency}:based",
                                lambda r, f: r.country_totals(f, currency, "based"), filters)
        figure = compute_map_figure(totals, countries, metric=view.metric, scale=view.scale, currency=currency,
                                    basis="based")
        head = context.cached(f"headline:{currency}", lambda r, f: r.headline(f, currency), filters)
        unstated = max(0.0, head.usd - float(totals["usd"].sum()))
        country_name = None
    elif drill:
        area_filters = map_views.admin1_filters(filters, drill)
        areas = context.cached(f"map:admin1:{currency}", lambda r, f: map_views.admin1_totals(r, f, currency),
                               area_filters)
        figure = compute_admin1_figure(areas, shapes, drill, countries, filters.admin1, view.metric, view.scale,
                                       currency)
        head = context.cached(f"headline:{currency}", lambda r, f: r.headline(f, currency), area_filters)
        unplaced = max(0.0, head.usd - float(areas["usd"].sum()))
        names = countries.set_index("iso3")["shape_name"]
        country_name = str(names.get(drill, drill))
    else:
        # The map shows every country's value, with the selected ones outlined, so a click can go back.
        map_filters = replace(filters, countries=())
        totals = context.cached(f"country_totals:{currency}", lambda r, f: r.country_totals(f, currency),
                                map_filters)
        figure = compute_map_figure(totals, countries, filters.countries, metric=view.metric, scale=view.scale,
                                    currency=currency)
        head = context.cached(f"headline:{currency}", lambda r, f: r.headline(f, currency), map_filters)
        country_name = None
    points = compute_points_trace(capped, size, currency) if capped is not None else None
    if points is not None:
        figure["data"].append(points)
    regions = context.cached(f"map:regions:{currency}",
                             lambda r, f: map_views.region_totals(r, f, currency), filters)
    shares = context.cached(f"map:precision:{currency}", lambda r, f: map_views.precision(r, f, currency), filters)
    crumb = [" › ", country_name] if country_name else ""
    note = SPENT_NOTE if view.basis == "based" else ""  # these lists are about places of spending
    return (figure, compute_map_note(head, capped, currency, drill, unplaced, unstated), crumb, drill is None,
            compute_regions(regions, currency, note), compute_precision(shares, note),
            compute_title(view, country_name))


def register(app: Dash, context: AppContext) -> None:
    shipped_countries()  # read the shipped boundaries now, not in the first user's map update
    map_views.population()

    @app.callback(
        Output(ids.MAP, "figure"),
        Output(ids.MAP_NOTE, "children"),
        Output(ids.MAP_CRUMB, "children"),
        Output(ids.MAP_WORLD, "disabled"),
        Output(ids.MAP_REGIONS, "children"),
        Output(ids.MAP_PRECISION, "children"),
        Output(ids.MAP_TITLE, "children"),
        Input(ids.URL, "search"),
    )
    def update_map(search):
        return map_outputs(context, search)

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Output(ids.MAP_METRIC, "value"),
        Output(ids.MAP_SCALE, "value"),
        Output(ids.MAP_BASIS, "value"),
        Input(ids.MAP_METRIC, "value"),
        Input(ids.MAP_SCALE, "value"),
        Input(ids.MAP_BASIS, "value"),
        Input(ids.MAP_WORLD, "n_clicks"),
        Input(ids.URL, "search"),
        State(ids.URL, "search"),
        prevent_initial_call="initial_duplicate",
    )
    def sync_map_view(metric, scale, basis, _world, _search_input, search):
        trigger = ctx.triggered_id
        new = None
        if trigger == ids.MAP_METRIC:
            new = with_map_view(search, metric=metric)
        elif trigger == ids.MAP_SCALE:
            new = with_map_view(search, scale=scale)
        elif trigger == ids.MAP_BASIS:
            new = with_map_view(search, basis=basis)
        elif trigger == ids.MAP_WORLD:
            new = world_search(search) if _world else None
        else:  # page load or a new URL: the URL sets the controls
            view = parse_view(search)
            return no_update, view.metric, view.scale, view.basis
        return (no_update if new is None else new), no_update, no_update, no_update
