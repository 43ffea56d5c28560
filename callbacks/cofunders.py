"""The co-funder finder: funders active under the filters, funders like one, the funding network and
baskets of several funders (or recipients). Aggregates come from ``data_sources.cofunding``; this module
turns them into components and a plain plotly figure, and registers the page's callbacks."""

from __future__ import annotations

import math
from dataclasses import replace

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view
from callbacks.formatting import compact_usd, count
from callbacks.pages import page_of, profile_href, profile_of
from data_sources import cofunding
from data_sources.filters import Filters
from layouts import ids

PAGE = 25  # funders per "show more"
MAX_MORE = cofunding.MAX_FUNDERS_SHOWN // PAGE - 1
MAX_KEY = 300
SIMILAR = 10
# Okabe–Ito orange and blue: a pair colour-blind readers tell apart; shape tells "funded together".
FUNDER_COLOUR, RECIPIENT_COLOUR, EDGE_COLOUR = "#E69F00", "#0072B2", "rgba(90,90,90,0.28)"
NETWORK_LABELS = 12  # funders named on the figure itself (all names are in the hover)


# --- computing (cached per data version, filters and view) -------------------------------------------


def compute_ranking(context: AppContext, filters: Filters, currency: str, more: int = 0) -> cofunding.Ranking:
    limit = PAGE * (1 + max(0, min(int(more), MAX_MORE)))
    return context.cached(f"cofunders_ranking:{currency}:{limit}",
                          lambda r, f: cofunding.rank_parties(r, f, "funder", limit, currency), filters)


def compute_target(context: AppContext, filters: Filters) -> str | None:
    """The funder to compare with when the filters hold exactly one (its party key)."""
    if len(filters.funders) != 1:
        return None
    return context.cached("cofunders_single", lambda r, f: cofunding.single_party(r, f, "funder"), filters)


def compute_similar(context: AppContext, filters: Filters, target: str, currency: str) -> cofunding.Similarity:
    return context.cached(f"cofunders_similar:{currency}:{target}",
                          lambda r, f: cofunding.similar_funders(r, f, target, SIMILAR, currency),
                          replace(filters, funders=()))


def compute_basket(context: AppContext, filters: Filters, currency: str) -> cofunding.Basket | None:
    role = "funder" if len(filters.funders) >= 2 else "recipient" if len(filters.recipients) >= 2 else None
    if role is None:
        return None
    return context.cached(f"cofunders_basket:{currency}:{role}",
                          lambda r, f: cofunding.basket(r, f, role, currency), filters)


def compute_network(context: AppContext, filters: Filters, currency: str) -> cofunding.Network:
    return context.cached(f"cofunders_network:{currency}", lambda r, f: cofunding.network(r, f, currency), filters)


# --- rendering ---------------------------------------------------------------------------------------


def _years(first: int | None, last: int | None) -> str:
    if first is None:
        return "years unknown"
    return str(first) if first == last else f"{first}–{last}"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _items_text(items: tuple[cofunding.Item, ...], currency: str) -> str:
    return ", ".join(f"{i.label} ({compact_usd(i.usd, currency)})" for i in items) or "–"


def _partner_links(items: tuple[cofunding.Item, ...], role: str, currency: str) -> list:
    out: list = []
    for n, item in enumerate(items):
        if n:
            out.append(", ")
        out += [dcc.Link(item.label, href=profile_href(role, item.value)), f" ({compact_usd(item.usd, currency)})"]
    return out or ["–"]


def render_ranking(ranking: cofunding.Ranking, currency: str, filters: Filters | None = None) -> list:
    """The ranked funders as a numbered list; a theme or country line is left out when the filters
    name one theme (country) and the funder has only that one (it would repeat the filter)."""
    filters = filters or Filters()
    if not ranking.parties:
        return [html.P("No funder has money under these filters. Widen them (fewer places, themes or years).",
                       className="mb-0")]
    shown = len(ranking.parties)
    summary = (f"{_plural(ranking.total, 'funder')}, {compact_usd(ranking.usd, currency)} together"
               + (f"; the largest {shown} shown." if shown < ranking.total else "."))
    items = []
    for party in ranking.parties:
        items.append(html.Li([
            html.Span([dcc.Link(party.label, href=profile_href("funder", party.key), className="fw-semibold"),
                       html.Span(f" · {compact_usd(party.usd, currency)} · {_plural(party.records, 'record')} · "
                                 f"{_years(party.first_year, party.last_year)}", className="text-muted")]),
            html.Div([html.Span("Themes: ", className="fw-semibold"), _items_text(party.themes, currency)],
                     className="small") if not _repeats(party.themes, filters.themes) else None,
            html.Div([html.Span("Countries: ", className="fw-semibold"), _items_text(party.countries, currency)],
                     className="small") if not _repeats(party.countries, filters.countries) else None,
            html.Div([html.Span("Funds: ", className="fw-semibold"),
                      *_partner_links(party.counterparts, "recipient", currency)], className="small"),
        ], className="list-group-item"))
    return [html.P(summary, className="small mb-2"),
            # A bounded box: the rest of the page stays in reach on a phone.
            html.Ol(items, className="list-group list-group-numbered cofunders-list", tabIndex="0",
                    style={"maxHeight": "70vh", "overflowY": "auto"}, **{"aria-label": "Funders"})]


def _repeats(items: tuple[cofunding.Item, ...], chosen: tuple[str, ...]) -> bool:
    return len(chosen) == 1 and len(items) == 1 and items[0].value == chosen[0]


def like_options(ranking: cofunding.Ranking, selected: str | None, selected_label: str | None = None) -> list[dict]:
    options = [{"label": p.label, "value": p.key} for p in ranking.parties]
    if selected and selected not in {o["value"] for o in options}:
        options.insert(0, {"label": selected_label or selected, "value": selected})
    return options


def shares_text(similar: cofunding.Similar) -> str:
    """"shares 4 recipients, 3 countries, 2 themes" (the things both fund)."""
    n = similar.shared
    return (f"shares {_plural(n['recipient'], 'recipient')}, {_plural(n['country'], 'country', 'countries')}, "
            f"{_plural(n['theme'], 'theme')}")


def render_similar(similarity: cofunding.Similarity | None, currency: str) -> list:
    if similarity is None:
        return [html.P("Choose one funder in the filters, or pick one above, to see funders like it.",
                       className="small mb-0")]
    if not similarity.found:
        return [html.P(f"{similarity.target_label} has no money under these filters.", className="small mb-0")]
    if not similarity.similar:
        return [html.P(f"No other funder shares recipients, countries or themes with {similarity.target_label} "
                       "under these filters.", className="small mb-0")]
    items = [html.Li([
        dcc.Link(s.label, href=profile_href("funder", s.key), className="fw-semibold"),
        html.Span(f" · {round(100 * s.score)}% alike · {shares_text(s)} · {compact_usd(s.usd, currency)} here",
                  className="small"),
    ], className="list-group-item") for s in similarity.similar]
    return [html.P(f"Funders most like {similarity.target_label}:", className="small mb-1"),
            html.Ol(items, className="list-group list-group-numbered", **{"aria-label": "Similar funders"})]


def render_basket(basket: cofunding.Basket | None, currency: str) -> list:
    if basket is None:
        return []
    role, partner = basket.role, cofunding.other_role(basket.role)
    partners = "recipients" if partner == "recipient" else "funders"
    names = {m.key: f"#{n}" for n, m in enumerate(basket.members, 1)}
    member_rows = [html.Tr([html.Th(names[m.key], scope="row"),
                            html.Td(dcc.Link(m.label, href=profile_href(role, m.key))),
                            html.Td(compact_usd(m.usd, currency)), html.Td(count(m.records)),
                            html.Td(count(m.counterparts))]) for m in basket.members]
    members = dbc.Table([html.Thead(html.Tr([html.Th("#", scope="col"), html.Th("Member", scope="col"),
                                             html.Th("Amount", scope="col"), html.Th("Records", scope="col"),
                                             html.Th(partners.capitalize(), scope="col")])),
                         html.Tbody(member_rows)], size="sm", responsive=True, className="small mb-2")
    header = html.Tr([html.Th("", scope="col")] + [html.Th(names[m.key], scope="col") for m in basket.members])
    rows = [html.Tr([html.Th(names[a.key], scope="row")] + [
        html.Td(f"{basket.matrix_count[i][j]} · {compact_usd(basket.matrix_usd[i][j], currency)}")
        for j, _b in enumerate(basket.members)]) for i, a in enumerate(basket.members)]
    matrix = dbc.Table([html.Caption(f"Shared {partners}: how many, and both members' money to them "
                                     f"(the diagonal: each member's own {partners})."),
                        html.Thead(header), html.Tbody(rows)], size="sm", bordered=True, responsive=True,
                       className="small mb-2")

    def shared_list(title: str, items: tuple[cofunding.SharedItem, ...], total: int, link_role: str | None,
                    shown: int = 10) -> html.Div:
        heading = html.H4(title, className="h6 mt-2 mb-1")
        if not items:
            return html.Div([heading, html.P("None in common.", className="small")])
        lines = []
        for s in items[:shown]:
            label = dcc.Link(s.label, href=profile_href(link_role, s.value)) if link_role else s.label
            lines.append(html.Li([label, f" · {compact_usd(s.usd, currency)} · "
                                  f"{len(s.members)} of {len(basket.members)} ("
                                  + ", ".join(names.get(k, k) for k in s.members) + ")"]))
        more = [html.P(f"The largest {len(lines)} of {total:,} shown.", className="small text-muted mb-1")] if (
            total > len(lines)) else []
        return html.Div([heading, html.Ul(lines, className="small mb-1"), *more])

    kind = "funders" if role == "funder" else "recipients"
    return [html.Section(dbc.Card(dbc.CardBody([
        html.H3(f"Basket: {len(basket.members)} {kind} compared", className="h6 mb-1"),
        html.P(f"What the {kind} in the filters share: {partners} funded by more than one of them, and countries "
               "and themes in common.", className="small text-muted mb-2"),
        members, matrix,
        shared_list(f"{partners.capitalize()} in common", basket.shared_counterparts,
                    basket.shared_totals["counterparts"], partner),
        shared_list("Countries in common", basket.shared_countries, basket.shared_totals["countries"], None),
        shared_list("Themes in common", basket.shared_themes, basket.shared_totals["themes"], None),
    ]), className="shadow-sm mb-3"), **{"aria-label": "Basket"})]


def _safe(text: str) -> str:
    # Plotly reads a few HTML tags in hover and text: names are shown, never parsed.
    return str(text).replace("<", "‹").replace(">", "›")


def compute_network_figure(net: cofunding.Network, currency: str = "USD") -> dict:
    """A plain plotly figure: edges as one line trace (None breaks), funders and recipients as two
    colours, recipients funded by two or more shown funders as diamonds ("funded together")."""
    nodes = net.nodes
    if not nodes:
        return {"data": [], "layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False},
                                       "margin": {"l": 0, "r": 0, "t": 0, "b": 0}}}
    xs: list = []
    ys: list = []
    for a, b, _usd in net.edges:
        xs += [nodes[a].x, nodes[b].x, None]
        ys += [nodes[a].y, nodes[b].y, None]
    top = max((n.usd for n in nodes), default=0.0) or 1.0

    def size(usd: float) -> float:
        return 7 + 28 * math.sqrt(max(usd, 0.0) / top)

    named = {n.key for n in sorted((n for n in nodes if n.role == "funder"), key=lambda n: (-n.usd, n.key))
             [:NETWORK_LABELS]}

    def trace(name: str, chosen: list, colour: str, symbol: str, outline: dict, role_word: str) -> dict:
        return {
            "type": "scatter", "mode": "markers+text", "name": name,
            "x": [n.x for n in chosen], "y": [n.y for n in chosen],
            "text": [_safe(n.label if n.key in named and n.role == "funder" else "")[:28] for n in chosen],
            "textposition": "top center", "textfont": {"size": 10},
            "marker": {"color": colour, "size": [size(n.usd) for n in chosen], "symbol": symbol, "line": outline,
                       "opacity": 0.9},
            "customdata": [[profile_href(n.role, n.key), _safe(n.label), compact_usd(n.usd, currency), n.partners]
                           for n in chosen],
            "hovertemplate": f"<b>%{{customdata[1]}}</b><br>{role_word} · %{{customdata[2]}}<br>"
                             f"linked to %{{customdata[3]}} shown<extra></extra>",
        }

    funders = [n for n in nodes if n.role == "funder"]
    alone = [n for n in nodes if n.role == "recipient" and n.partners < 2]
    together = [n for n in nodes if n.role == "recipient" and n.partners >= 2]
    data = [
        {"type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "skip", "showlegend": False,
         "line": {"color": EDGE_COLOUR, "width": 1}, "name": "funding links"},
        trace("Funder", funders, FUNDER_COLOUR, "circle", {"width": 0.5, "color": "#ffffff"}, "Funder"),
        trace("Recipient", alone, RECIPIENT_COLOUR, "circle", {"width": 0.5, "color": "#ffffff"}, "Recipient"),
        trace("Recipient funded together (2+ funders shown)", together, RECIPIENT_COLOUR, "diamond",
              {"width": 1.5, "color": "#111111"}, "Recipient funded together"),
    ]
    axis = {"visible": False, "range": [-0.06, 1.06], "fixedrange": False}
    layout = {"autosize": True, "margin": {"l": 4, "r": 4, "t": 36, "b": 4}, "paper_bgcolor": "rgba(0,0,0,0)",
              "plot_bgcolor": "rgba(0,0,0,0)", "showlegend": True, "hovermode": "closest",
              "legend": {"orientation": "h", "y": 1.06, "x": 0, "font": {"size": 11}},
              "xaxis": axis, "yaxis": {**axis}, "uirevision": "cofunders-network", "font": {"size": 11}}
    return {"data": data, "layout": layout}


def network_note(net: cofunding.Network) -> str:
    if not net.nodes:
        return "No funding links under these filters (rows need both a funder and a recipient)."
    funders = sum(1 for n in net.nodes if n.role == "funder")
    recipients = len(net.nodes) - funders
    together = sum(1 for n in net.nodes if n.role == "recipient" and n.partners >= 2)
    return (f"{_plural(funders, 'funder')} of {net.funders_total:,} and {_plural(recipients, 'recipient')} of "
            f"{net.recipients_total:,}, the largest by money; {together:,} of the recipients shown are funded "
            "together by two or more of these funders.")


def clicked_profile(click_data: object) -> str | None:
    """The profile path a network click carries, if it is a valid one."""
    try:
        href = click_data["points"][0]["customdata"][0]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return None
    if not isinstance(href, str) or len(href) > 3 * MAX_KEY + 20 or profile_of(href) is None:
        return None
    return href


def _valid_key(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_KEY else None


def _more(n_clicks: object) -> int:
    return n_clicks if isinstance(n_clicks, int) and not isinstance(n_clicks, bool) and n_clicks > 0 else 0


# --- callbacks ---------------------------------------------------------------------------------------


def register(app: Dash, context: AppContext) -> None:
    def on_page(pathname: str | None) -> None:
        if page_of(pathname) != "cofunders":
            raise PreventUpdate  # nothing is computed for a page nobody looks at

    @app.callback(
        Output(ids.COFUNDERS_RANKING, "children"),
        Output(ids.COFUNDERS_MORE, "disabled"),
        Output(ids.COFUNDERS_LIKE, "options"),
        Output(ids.COFUNDERS_LIKE, "value"),
        Input(ids.URL, "search"),
        Input(ids.URL, "pathname"),
        Input(ids.COFUNDERS_MORE, "n_clicks"),
        State(ids.COFUNDERS_LIKE, "value"),
    )
    def update_ranking(search, pathname, more, chosen):
        on_page(pathname)
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        ranking = compute_ranking(context, filters, currency, _more(more))
        target = compute_target(context, filters) or _valid_key(chosen)
        label = None
        if target:
            label = context.reader().labels_for("funder", [target]).get(target)
        exhausted = len(ranking.parties) >= ranking.total or _more(more) >= MAX_MORE
        return render_ranking(ranking, currency, filters), exhausted, like_options(ranking, target, label), target

    @app.callback(
        Output(ids.COFUNDERS_SIMILAR, "children"),
        Input(ids.COFUNDERS_LIKE, "value"),
        Input(ids.URL, "search"),
        State(ids.URL, "pathname"),
    )
    def update_similar(target, search, pathname):
        on_page(pathname)
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        target = _valid_key(target)
        return render_similar(compute_similar(context, filters, target, currency) if target else None, currency)

    @app.callback(Output(ids.COFUNDERS_BASKET, "children"), Input(ids.URL, "search"), Input(ids.URL, "pathname"))
    def update_basket(search, pathname):
        on_page(pathname)
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        return render_basket(compute_basket(context, filters, currency), currency)

    @app.callback(
        Output(ids.COFUNDERS_NETWORK, "figure"),
        Output(ids.COFUNDERS_NETWORK_NOTE, "children"),
        Input(ids.URL, "search"),
        Input(ids.URL, "pathname"),
    )
    def update_network(search, pathname):
        on_page(pathname)
        filters, _error = parse_search(search)
        currency = parse_view(search).currency
        net = compute_network(context, filters, currency)
        return compute_network_figure(net, currency), network_note(net)

    @app.callback(
        Output(ids.URL, "pathname", allow_duplicate=True),
        Input(ids.COFUNDERS_NETWORK, "clickData"),
        prevent_initial_call=True,
    )
    def open_profile(click_data):
        href = clicked_profile(click_data)
        return href if href else no_update
