"""Linked views: USD by year, top funders, top recipients and themes, all following the filters.
Clicking a bar filters everything by it (see callbacks.filters)."""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, dcc, html

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view
from callbacks.formatting import SYMBOLS, compact_usd
from callbacks.pages import profile_href
from data_sources.filters import Filters
from layouts import ids

BAR_COLOUR = "#31688e"  # viridis mid-blue: the map's scale, readable for colour-blind users
TOP = 10


# Figures are plain plotly dicts: building ``go.Figure`` objects validates every property and
# costs tens of milliseconds a chart, on every filter change. Tests check the dicts with go.Figure.
def _layout(height: int, xaxis: dict, yaxis: dict) -> dict:
    return {
        "height": height, "margin": {"l": 8, "r": 8, "t": 8, "b": 8}, "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)", "showlegend": False, "clickmode": "event", "dragmode": False,
        "font": {"size": 11}, "uirevision": "charts", "xaxis": xaxis, "yaxis": yaxis,
    }


def _money_axis(currency: str) -> dict:
    return {"tickprefix": SYMBOLS.get(currency, ""), "tickformat": "~s", "gridcolor": "#e9ecef"}


def compute_year_figure(totals: pd.DataFrame, currency: str = "USD") -> dict:
    usd = totals["usd"].astype(float).tolist()
    bar = {
        "type": "bar", "x": totals["label"].astype(int).tolist(), "y": usd,
        "customdata": [[str(v)] for v in totals["value"]], "marker": {"color": BAR_COLOUR},
        "text": [compact_usd(v, currency) for v in usd], "textposition": "none",
        "hovertemplate": "%{x}: %{text}<extra></extra>",
    }
    xaxis = {"dtick": 1 if len(totals) <= 12 else 2, "tickformat": "d"}
    yaxis = {**_money_axis(currency), "automargin": True}
    return {"data": [bar], "layout": _layout(220, xaxis, yaxis)}


def compute_ranking_figure(totals: pd.DataFrame, currency: str = "USD") -> dict:
    """Horizontal bars, largest on top; the label is cut to fit, the hover shows it whole."""
    ordered = totals.iloc[::-1]
    labels = [str(label) for label in ordered["label"]]
    usd = ordered["usd"].astype(float).tolist()
    bar = {
        "type": "bar", "x": usd, "y": [s if len(s) <= 34 else s[:33] + "…" for s in labels], "orientation": "h",
        "marker": {"color": BAR_COLOUR},
        "customdata": [[str(value), label] for value, label in zip(ordered["value"], labels, strict=True)],
        "text": [compact_usd(v, currency) for v in usd], "textposition": "auto",
        "hovertemplate": "<b>%{customdata[1]}</b><br>%{text} · %{meta}<extra></extra>", "meta": "click to filter",
    }
    xaxis = {**_money_axis(currency), "automargin": True}  # room for the tick labels under the bars
    return {"data": [bar], "layout": _layout(60 + 26 * max(len(totals), 1), xaxis, {"automargin": True})}


def _breakdown(context: AppContext, filters: Filters, dimension: str, currency: str) -> pd.DataFrame:
    return context.cached(f"totals_by_{dimension}:{currency}",
                          lambda r, f: r.totals_by(f, dimension, TOP, currency), filters)


def compute_profile_links(totals: pd.DataFrame, role: str, cut: int = 28) -> list:
    """"Profiles: A · B · C" for the bars of a top-funders or top-recipients chart (largest first);
    each bar's ``value`` is the party key its profile takes."""
    if totals.empty:
        return []
    links: list = [html.Span("Profiles: ", className="text-muted")]
    for i, (label, value) in enumerate(zip(totals["label"], totals["value"], strict=True)):
        text = str(label if label is not None else value)
        if i:
            links.append(" · ")
        links.append(dcc.Link(text if len(text) <= cut else text[: cut - 1] + "…",
                              href=profile_href(role, str(value)), title=text))
    return links


def compute_charts(context: AppContext, filters: Filters, currency: str = "USD") -> tuple[dict, ...]:
    def breakdown(dimension: str):
        return _breakdown(context, filters, dimension, currency)

    return (
        compute_year_figure(breakdown("year"), currency),
        compute_ranking_figure(breakdown("funder"), currency),
        compute_ranking_figure(breakdown("recipient"), currency),
        compute_ranking_figure(breakdown("theme"), currency),
    )


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        *(Output(chart_id, "figure") for chart_id in ids.CHARTS),
        *(Output(list_id, "children") for list_id in ids.CHART_PROFILES.values()),
        Input(ids.URL, "search"),
    )
    def update_charts(search):
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        # The links come from the same cached totals as the bars: no further query.
        links = (compute_profile_links(_breakdown(context, filters, ids.CHARTS[chart_id], currency),
                                       ids.CHARTS[chart_id]) for chart_id in ids.CHART_PROFILES)
        return (*compute_charts(context, filters, currency), *links)
