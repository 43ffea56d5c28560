"""Linked views: USD by year, top funders, top recipients and themes, all following the filters.
Clicking a bar filters everything by it (see callbacks.filters)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output

from callbacks.context import AppContext
from callbacks.filters import parse_search
from callbacks.formatting import compact_usd
from data_sources.filters import Filters
from layouts import ids

BAR_COLOUR = "#31688e"  # viridis mid-blue: the map's scale, readable for colour-blind users
TOP = 10


def _layout(figure: go.Figure, height: int) -> go.Figure:
    figure.update_layout(
        height=height, margin={"l": 8, "r": 8, "t": 8, "b": 8}, paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)", showlegend=False, clickmode="event", dragmode=False,
        font={"size": 11}, uirevision="charts",
    )
    return figure


def compute_year_figure(totals: pd.DataFrame) -> go.Figure:
    figure = go.Figure(go.Bar(
        x=totals["label"].astype(int), y=totals["usd"], customdata=totals[["value"]].astype(str),
        marker_color=BAR_COLOUR, text=totals["usd"].map(compact_usd), textposition="none",
        hovertemplate="%{x}: %{text}<extra></extra>",
    ))
    figure.update_yaxes(tickprefix="$", tickformat="~s", gridcolor="#e9ecef")
    figure.update_xaxes(dtick=1 if len(totals) <= 12 else 2, tickformat="d")
    return _layout(figure, 220)


def compute_ranking_figure(totals: pd.DataFrame) -> go.Figure:
    """Horizontal bars, largest on top; the label is cut to fit, the hover shows it whole."""
    ordered = totals.iloc[::-1]
    short = ordered["label"].astype(str).map(lambda s: s if len(s) <= 34 else s[:33] + "…")
    figure = go.Figure(go.Bar(
        x=ordered["usd"], y=short, orientation="h", marker_color=BAR_COLOUR,
        customdata=ordered[["value", "label"]].astype(str).to_numpy(),
        text=ordered["usd"].map(compact_usd), textposition="auto",
        hovertemplate="<b>%{customdata[1]}</b><br>%{text} · %{meta}<extra></extra>",
        meta="click to filter",
    ))
    figure.update_xaxes(tickprefix="$", tickformat="~s", gridcolor="#e9ecef")
    figure.update_yaxes(automargin=True)
    return _layout(figure, 60 + 26 * max(len(totals), 1))


def compute_charts(context: AppContext, filters: Filters) -> tuple[go.Figure, ...]:
    def breakdown(dimension: str):
        return context.cached(f"totals_by_{dimension}", lambda r, f: r.totals_by(f, dimension, TOP), filters)

    return (
        compute_year_figure(breakdown("year")),
        compute_ranking_figure(breakdown("funder")),
        compute_ranking_figure(breakdown("recipient")),
        compute_ranking_figure(breakdown("theme")),
    )


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        *(Output(chart_id, "figure") for chart_id in ids.CHARTS),
        Input(ids.URL, "search"),
    )
    def update_charts(search):
        filters, _error = parse_search(search)
        return compute_charts(context, filters)
