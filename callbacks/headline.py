"""Headline figures that follow the filters: total USD, records, funders, recipients."""

from __future__ import annotations

from dash import Dash, Input, Output

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view
from callbacks.formatting import compact_usd, count
from data_sources import queries
from layouts import ids


def compute_headline_texts(head: queries.Headline, currency: str = "USD") -> tuple[str, str, str, str, str]:
    note = ""
    if len(head.usd_by_flow_type) > 1:
        parts = [f"{flow} {compact_usd(usd, currency)}" for flow, usd in sorted(head.usd_by_flow_type.items(),
                                                                                  key=lambda item: str(item[0]))]
        note = ("By flow type: " + ", ".join(parts) + ". A commitment and its disbursements are the same "
                "money at two stages: pick one flow type to compare like with like.")
    return compact_usd(head.usd, currency), count(head.records), count(head.funders), count(head.recipients), note


def register(app: Dash, context: AppContext) -> None:
    @app.callback(
        Output(ids.HEADLINE_USD, "children"),
        Output(ids.HEADLINE_RECORDS, "children"),
        Output(ids.HEADLINE_FUNDERS, "children"),
        Output(ids.HEADLINE_RECIPIENTS, "children"),
        Output(ids.HEADLINE_NOTE, "children"),
        Input(ids.URL, "search"),
    )
    def update_headline(search):
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        head = context.cached(f"headline:{currency}", lambda r, f: r.headline(f, currency), filters)
        return compute_headline_texts(head, currency)
