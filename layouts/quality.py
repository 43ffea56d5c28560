"""The data quality section of the Sources page: how much money has a known place, sector, recipient
and a USD value, per source; duplicates excluded; place names no admin area matched.

Every text goes in as component children (escaped, never HTML). The figures come from
``data_sources.quality.quality_report``.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from callbacks.formatting import compact_usd

UNMATCHED_SHOWN = 20
SHARES = (("place", "a known place"), ("sector", "a known sector"), ("recipient", "a known recipient"))


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def _row(name: str, figures: dict) -> html.Tr:
    money, rows = figures["money_share"], figures["row_share"]
    dupes = figures["duplicates"]
    return html.Tr([
        html.Td(name),
        html.Td(f"{figures['rows']:,}"),
        *(html.Td(_percent(money[key]), title=f"{_percent(rows[key])} of rows") for key, _label in SHARES),
        html.Td(_percent(rows["usd"]), title=f"{figures['rows_without_usd']:,} rows with an amount but no USD value"),
        html.Td(compact_usd(figures["usd"])),
        html.Td(f"{dupes['rows']:,} · {compact_usd(dupes['usd'])}" if dupes["rows"] else "none"),
        html.Td(compact_usd(figures["counted_usd"])),
    ])


def quality_section(report: dict) -> html.Div:
    """Per source and overall: the shares of money with a known place, sector and recipient (hover: of
    rows), the share of rows with a USD value, raw USD, duplicates excluded and USD counted once."""
    header = html.Thead(html.Tr([html.Th(h) for h in (
        "source", "rows", *(f"money with {label}" for _key, label in SHARES), "rows with USD", "raw USD",
        "duplicates excluded", "USD counted once",
    )]))
    body = [_row(source, figures) for source, figures in sorted(report.get("by_source", {}).items())]
    body.append(html.Tr([html.Th("all sources"), *_row("", report["overall"]).children[1:]]))
    parts: list = [
        html.H2("Data quality", className="h5 mt-4"),
        html.P(["Shares of money measure absolute US dollars, so corrections do not cancel payments out; hover a "
                "share for the share of rows. Duplicates are rows another stream also reports: they stay listed "
                "and exported, and totals count the other row (", html.Code("fundatlas duplicates"),
                " lists each one and why)."], className="small text-muted"),
        dbc.Table([header, html.Tbody(body)], striped=True, size="sm", responsive=True, className="small"),
    ]
    by_load = report.get("by_load") or []
    if by_load:
        load_rows = [_row(f"{entry['load_id']} · {entry['format'] or ''} · {entry['source_file']}", entry)
                     for entry in by_load]
        parts.append(html.Details([
            html.Summary(f"Per load ({len(by_load):,} loads with rows)"),
            dbc.Table([header, html.Tbody(load_rows)], striped=True, size="sm", responsive=True,
                      className="small text-break"),
        ]))
    unmatched = report.get("unmatched_place_names") or []
    if unmatched:
        items = [html.Li(_describe_unmatched(u)) for u in unmatched[:UNMATCHED_SHOWN]]
        more = f" (first {UNMATCHED_SHOWN} of {len(unmatched)})" if len(unmatched) > UNMATCHED_SHOWN else ""
        parts.append(html.Details([html.Summary(f"Place names no admin area matched{more}"),
                                   html.Ul(items, className="small")]))
    return html.Div(parts, id="quality-section")


def _describe_unmatched(entry: dict) -> str:
    place = " ".join(str(entry[k]) for k in ("code", "name") if entry.get(k))
    country = entry.get("country_iso3") or ""
    rows = entry.get("rows") or entry.get("count")
    reason = entry.get("reason")
    return " · ".join(str(part) for part in (country, place, f"{rows:,} rows" if rows else None, reason) if part)
