"""The co-funder finder's aggregates: the columnar copy answers what SQL answers (SQLite and PostgreSQL),
rankings and baskets match pandas over the rows ``queries.iter_rows`` streams, similarity on a small
store whose answer is worked out by hand, and the network stays inside its caps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sqlalchemy import text

from callbacks import cofunders as page
from callbacks.context import ColumnarReader, SqlReader
from data_sources import cofunding, columnar, queries
from data_sources.filters import Filters
from data_sources.loading import load_file
from tests.conftest import demo_engine_of

FILTER_CASES = [
    Filters(),
    Filters(themes=("WASH",), countries=("KEN",)),
    Filters(year_from=2018, year_to=2022),
    Filters(sources=("iati", "oecd_crs")),
    Filters(q="water"),
]


def _edge_cases(engine) -> None:
    """What the demo lacks: duplicates (left out of totals), rows with no USD and rows with no year."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE allocations SET duplicate_of = 'iati:other:0' WHERE row_id % 17 = 0"))
        conn.execute(text("UPDATE allocations SET amount_usd = NULL WHERE row_id % 23 = 0"))
        conn.execute(text("UPDATE allocations SET year = NULL WHERE row_id % 29 = 0"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_engine(request, tmp_path_factory):
    """The demo bundle plus this module's edge cases, in a store of each kind."""
    yield from demo_engine_of(request, tmp_path_factory, "cofunding", _edge_cases)


@pytest.fixture(scope="module")
def readers(demo_engine, tmp_path_factory):
    table = columnar.ensure(demo_engine, root=tmp_path_factory.mktemp("copies"))
    return SqlReader(demo_engine), ColumnarReader(demo_engine, table)


# --- an independent computation: pandas over the streamed rows ---------------------------------------


def _keyed_rows(engine, filters: Filters) -> pd.DataFrame:
    """The rows totals count, each with its funder's and recipient's party key worked out here: the
    organisation mention with the row's exact (source, id, name), else the id, else the name."""
    rows = pd.DataFrame(list(queries.iter_rows(engine, filters)))
    rows = rows[rows["duplicate_of"].isna()].copy()
    mentions = pd.read_sql(text("SELECT role, source, party_id, party_name, org_key FROM organisation_mentions"),
                           engine)
    blank = "\x00"  # NULL matches NULL, as the store's join does
    for role in cofunding.ROLES:
        found = mentions[mentions["role"] == role].drop(columns="role").fillna({"party_id": blank,
                                                                              "party_name": blank})
        left = pd.DataFrame({"source": rows["source"], "party_id": rows[f"{role}_id"].fillna(blank),
                             "party_name": rows[f"{role}_name"].fillna(blank)})
        merged = left.merge(found, on=["source", "party_id", "party_name"], how="left")
        assert len(merged) == len(rows)
        key = merged["org_key"].to_numpy(dtype=object)
        fallback = rows[f"{role}_id"].where(rows[f"{role}_id"].notna(), rows[f"{role}_name"]).to_numpy(dtype=object)
        rows[role] = np.where(pd.isna(key), fallback, key)
    rows["usd"] = rows["amount_usd"].fillna(0.0).astype(float)
    rows["record"] = rows["source"] + ":" + rows["record_id"]
    return rows


def _largest(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(["usd", *by], ascending=[False] + [True] * len(by), kind="stable")


# --- SQL and the columnar copy agree -------------------------------------------------------------------


@pytest.mark.parametrize("filters", FILTER_CASES, ids=repr)
def test_grouped_sums_equal_on_sql_and_columnar(readers, filters):
    sql, fast = readers
    for role in cofunding.ROLES:
        for other in (cofunding.other_role(role), "country", "theme"):
            a = cofunding.party_sums(sql, filters, role, other)
            b = cofunding.party_sums(fast, filters, role, other)
            pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
        a, b = cofunding.party_stats(sql, filters, role), cofunding.party_stats(fast, filters, role)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
        assert len(a) > 0 or filters.q


@pytest.mark.parametrize("filters", FILTER_CASES[:3], ids=repr)
def test_results_equal_on_sql_and_columnar(readers, filters):
    sql, fast = readers
    _same_ranking(cofunding.rank_parties(sql, filters, "funder", 25, "GBP"),
                  cofunding.rank_parties(fast, filters, "funder", 25, "GBP"))
    a, b = cofunding.network(sql, filters), cofunding.network(fast, filters)
    assert [(n.key, n.role, n.partners) for n in a.nodes] == [(n.key, n.role, n.partners) for n in b.nodes]
    assert [(s, t) for s, t, _u in a.edges] == [(s, t) for s, t, _u in b.edges]
    np.testing.assert_allclose([(n.x, n.y, n.usd) for n in a.nodes], [(n.x, n.y, n.usd) for n in b.nodes],
                               rtol=1e-6, atol=1e-6)
    target = cofunding.rank_parties(fast, filters, "funder", 1).parties[0].key
    sa, sb = cofunding.similar_funders(sql, filters, target), cofunding.similar_funders(fast, filters, target)
    assert [s.key for s in sa.similar] == [s.key for s in sb.similar]
    assert [s.shared for s in sa.similar] == [s.shared for s in sb.similar]
    np.testing.assert_allclose([s.score for s in sa.similar], [s.score for s in sb.similar], rtol=1e-9)


def _same_ranking(a: cofunding.Ranking, b: cofunding.Ranking) -> None:
    assert (a.total, len(a.parties)) == (b.total, len(b.parties))
    assert a.usd == pytest.approx(b.usd, rel=1e-9)
    for x, y in zip(a.parties, b.parties, strict=True):
        assert (x.key, x.label, x.records, x.first_year, x.last_year) == (y.key, y.label, y.records, y.first_year,
                                                                          y.last_year)
        assert x.usd == pytest.approx(y.usd, rel=1e-9)
        for mine, theirs in ((x.themes, y.themes), (x.countries, y.countries), (x.counterparts, y.counterparts)):
            assert [(i.value, i.label) for i in mine] == [(i.value, i.label) for i in theirs]
            assert [i.usd for i in mine] == pytest.approx([i.usd for i in theirs], rel=1e-9)


# --- rankings and baskets against pandas ---------------------------------------------------------------


@pytest.mark.parametrize("filters", FILTER_CASES[:4], ids=repr)
def test_ranking_matches_pandas(demo_engine, readers, filters):
    rows = _keyed_rows(demo_engine, filters)
    rows = rows[rows["funder"].notna()]
    expected = rows.groupby("funder").agg(usd=("usd", "sum"), records=("record", "nunique"),
                                          first=("year", "min"), last=("year", "max")).reset_index()
    expected = _largest(expected.rename(columns={"funder": "key"}), ["key"])
    for reader in readers:
        ranking = cofunding.rank_parties(reader, filters, "funder", 25)
        assert ranking.total == len(expected)
        assert ranking.usd == pytest.approx(expected["usd"].sum(), rel=1e-9)
        top = expected.head(25)
        assert [p.key for p in ranking.parties] == top["key"].tolist()
        assert [p.usd for p in ranking.parties] == pytest.approx(top["usd"].tolist(), rel=1e-9)
        assert [p.records for p in ranking.parties] == top["records"].tolist()
        assert [p.first_year for p in ranking.parties] == [None if pd.isna(v) else int(v) for v in top["first"]]
        assert [p.last_year for p in ranking.parties] == [None if pd.isna(v) else int(v) for v in top["last"]]
        for party in ranking.parties[:5]:
            mine = rows[rows["funder"] == party.key]
            for attr, column in (("themes", "theme"), ("countries", "country_iso3"), ("counterparts", "recipient")):
                sums = mine[mine[column].notna()].groupby(column)["usd"].sum().reset_index()
                want = _largest(sums, [column]).head(cofunding.TOP_ITEMS)
                got = getattr(party, attr)
                assert [i.value for i in got] == want[column].tolist(), (party.key, attr)
                assert [i.usd for i in got] == pytest.approx(want["usd"].tolist(), rel=1e-9)


def test_basket_matches_pandas(demo_engine, readers):
    members = [p.key for p in cofunding.rank_parties(readers[1], Filters(), "funder", 3).parties]
    filters = Filters(funders=tuple(members))
    rows = _keyed_rows(demo_engine, filters)
    links = rows[rows["recipient"].notna()].groupby(["funder", "recipient"])["usd"].sum()
    for reader in readers:
        basket = cofunding.basket(reader, filters, "funder")
        assert basket is not None
        keys = [m.key for m in basket.members]
        assert sorted(keys) == sorted(members)
        totals = rows.groupby("funder")["usd"].sum()
        assert [m.usd for m in basket.members] == pytest.approx([totals[k] for k in keys], rel=1e-9)
        for i, a in enumerate(keys):
            mine = links[a]
            assert basket.matrix_count[i][i] == len(mine)
            for j, b in enumerate(keys):
                if i == j:
                    continue
                common = mine.index.intersection(links[b].index)
                assert basket.matrix_count[i][j] == len(common) == basket.matrix_count[j][i]
                assert basket.matrix_usd[i][j] == pytest.approx(mine[common].sum() + links[b][common].sum(), rel=1e-9)
        by_country = rows[rows["country_iso3"].notna()].groupby("country_iso3")["funder"].nunique()
        assert {s.value for s in cofunding.basket(reader, filters, "funder", limit=1000).shared_countries} == set(
            by_country[by_country >= 2].index)
        assert basket.shared_totals["countries"] == int((by_country >= 2).sum())
        assert len(basket.shared_countries) == min(25, basket.shared_totals["countries"])
        shared = {s.value for s in cofunding.basket(reader, filters, "funder", limit=1000).shared_counterparts}
        per_recipient = links.reset_index().groupby("recipient")["funder"].nunique()
        assert shared == set(per_recipient[per_recipient >= 2].index)
    assert cofunding.basket(readers[1], Filters(funders=(members[0],)), "funder") is None


# --- the network ----------------------------------------------------------------------------------


def test_network_is_bounded_and_its_figure_valid(demo_engine, readers):
    sql, fast = readers
    everything = _keyed_rows(demo_engine, Filters())
    rows = everything[everything["recipient"].notna() & everything["funder"].notna()]
    # The largest funders by money (all their rows) among those that fund a recipient.
    by_funder = everything.groupby("funder")["usd"].sum().reset_index().rename(columns={"funder": "key"})
    top = [k for k in _largest(by_funder, ["key"])["key"] if k in set(rows["funder"])][:5]
    for reader in (sql, fast):
        net = cofunding.network(reader, Filters(), max_funders=5, max_recipients=12)
        funders = [n for n in net.nodes if n.role == "funder"]
        recipients = [n for n in net.nodes if n.role == "recipient"]
        assert 0 < len(funders) <= 5 and 0 < len(recipients) <= 12
        assert {n.key for n in funders} == set(top)
        assert net.funders_total == everything["funder"].nunique()
        assert net.recipients_total == everything["recipient"].nunique()
        shown = rows[rows["funder"].isin(top)]
        by_recipient = shown.groupby("recipient")["usd"].sum().reset_index().rename(columns={"recipient": "key"})
        assert {n.key for n in recipients} == set(_largest(by_recipient, ["key"]).head(12)["key"])
        linked = shown[shown["recipient"].isin({n.key for n in recipients})]
        pairs = linked.groupby(["funder", "recipient"])["usd"].sum()
        assert len(net.edges) == len(pairs)
        for s, t, usd in net.edges:
            assert usd == pytest.approx(pairs[(net.nodes[s].key, net.nodes[t].key)], rel=1e-9)
        partners = pairs.reset_index().groupby("recipient")["funder"].nunique()
        assert {n.key: n.partners for n in recipients} == partners.to_dict()
        assert all(0 <= n.x <= 1 and 0 <= n.y <= 1 for n in net.nodes)
        figure = page.compute_network_figure(net)
        go.Figure(figure)  # plotly validates every property
        lines, _funders, alone, together = figure["data"]
        assert len(lines["x"]) == 3 * len(net.edges)
        assert len(together["x"]) == sum(1 for n in recipients if n.partners >= 2) and len(alone["x"]) == sum(
            1 for n in recipients if n.partners < 2)
        assert len(net.nodes) == len(figure["data"][1]["x"]) + len(alone["x"]) + len(together["x"])
    full = cofunding.network(fast, Filters())
    assert sum(n.role == "funder" for n in full.nodes) <= cofunding.NETWORK_FUNDERS
    assert sum(n.role == "recipient" for n in full.nodes) <= cofunding.NETWORK_RECIPIENTS
    go.Figure(page.compute_network_figure(full, "EUR"))
    assert page.compute_network_figure(cofunding.network(fast, Filters(q="no such words at all")))["data"] == []


def test_layout_is_deterministic_and_in_the_unit_square():
    edges = [(0, 3, 10.0), (1, 3, 5.0), (2, 4, 1.0), (1, 4, 2.0)]
    first, again = cofunding.layout(6, edges), cofunding.layout(6, edges)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (6, 2) and first.min() >= 0 and first.max() <= 1
    linked = np.linalg.norm(first[0] - first[3])
    unlinked = np.linalg.norm(first[0] - first[5])
    assert linked < unlinked  # node 5 has no links: it sits away from the linked ones
    assert cofunding.layout(0, []).shape == (0, 2)


# --- similarity on a store where the answer is known ----------------------------------------------------

SMALL_ROWS = [  # id, funder, recipient, amount (USD), country, DAC code (14030 WASH, 12220 Health, 11220 Education)
    ("1", "Alder Fund", "Riverside Wells", 100, "Kenya", "14030"),
    ("2", "Alder Fund", "Hilltop Clinics", 100, "Kenya", "14030"),
    ("3", "Birch Fund", "Riverside Wells", 50, "Kenya", "14030"),
    ("4", "Birch Fund", "Hilltop Clinics", 50, "Kenya", "14030"),
    ("5", "Cedar Fund", "Riverside Wells", 100, "Uganda", "12220"),
    ("6", "Damson Fund", "Lakeside School", 100, "Tanzania", "11220"),
]
SMALL_MAPPING = """
[table]
source_name = "small"
[columns]
id = "Ref"
funder = "Funder"
recipient = "Recipient"
amount = "Amount"
country = "Country"
sector = "DAC"
year = "Year"
[constants]
currency = "USD"
flow_type = "grant"
"""


@pytest.fixture
def small_store(engine, tmp_path):
    path = tmp_path / "small.csv"
    lines = ["Ref,Funder,Recipient,Amount,Country,DAC,Year"] + [",".join(map(str, r)) + ",2021" for r in SMALL_ROWS]
    path.write_text("\n".join(lines) + "\n")
    mapping = tmp_path / "small.toml"
    mapping.write_text(SMALL_MAPPING)
    assert load_file(engine, path, "table", options={"mapping": mapping}).status == "succeeded"
    return engine


def test_similar_funders_on_a_small_store(small_store, tmp_path):
    table = columnar.ensure(small_store, root=tmp_path / "copies")
    for reader in (SqlReader(small_store), ColumnarReader(small_store, table)):
        keys = {p.label: p.key for p in cofunding.rank_parties(reader, Filters(), "funder", 10).parties}
        assert set(keys) == {"Alder Fund", "Birch Fund", "Cedar Fund", "Damson Fund"}
        themes = cofunding.party_sums(reader, Filters(), "funder", "theme")
        assert set(themes["other"]) == {"WASH", "Health", "Education"}
        found = cofunding.similar_funders(reader, Filters(funders=(keys["Alder Fund"],)), keys["Alder Fund"])
        assert found.found and found.target_label == "Alder Fund"
        # Birch splits its money as Alder does everywhere: 1 in each dimension. Cedar shares Riverside
        # Wells (Alder 1/2, Cedar 1: min 1/2, max 1 + 1/2 from Hilltop: J = 1/3) and nothing else.
        # Damson shares nothing and is not listed.
        assert [s.label for s in found.similar] == ["Birch Fund", "Cedar Fund"]
        birch, cedar = found.similar
        assert birch.score == pytest.approx(1.0) and birch.shared == {"recipient": 2, "country": 1, "theme": 1}
        assert cedar.jaccard == pytest.approx({"recipient": 1 / 3, "country": 0.0, "theme": 0.0})
        assert cedar.score == pytest.approx(cofunding.SIMILARITY_WEIGHTS["recipient"] / 3)
        assert cedar.shared == {"recipient": 1, "country": 0, "theme": 0}
        assert page.shares_text(cedar) == "shares 1 recipient, 0 countries, 0 themes"
        assert cofunding.single_party(reader, Filters(funders=("Alder Fund",))) == keys["Alder Fund"]
        missing = cofunding.similar_funders(reader, Filters(), "no such funder")
        assert not missing.found and missing.similar == ()
        recipients = cofunding.basket(reader, Filters(recipients=("Riverside Wells", "Hilltop Clinics")), "recipient")
        assert recipients is not None
        assert [s.label for s in recipients.shared_counterparts] == ["Alder Fund", "Birch Fund"]
        assert recipients.matrix_count[0][1] == 2 and recipients.matrix_usd[0][1] == pytest.approx(300.0)


# --- crafted inputs -----------------------------------------------------------------------------------


def test_crafted_inputs_are_refused_or_ignored(readers):
    fast = readers[1]
    with pytest.raises(ValueError):
        cofunding.party_sums(fast, Filters(), "funder", "funder")
    with pytest.raises(ValueError):
        cofunding.party_stats(fast, Filters(), "'; DROP TABLE allocations; --")
    assert len(cofunding.rank_parties(fast, Filters(), "funder", 10 ** 9).parties) <= cofunding.MAX_FUNDERS_SHOWN
    assert cofunding.rank_parties(fast, Filters(), "funder", -5).parties == ()
    for junk in (None, {}, {"points": []}, {"points": [{"customdata": ["javascript:alert(1)"]}]},
                 {"points": [{"customdata": ["/sources"]}]}, {"points": [{"customdata": [["/funder/x"]]}]},
                 {"points": [{"customdata": "x"}]}, "text"):
        assert page.clicked_profile(junk) is None
    assert page.clicked_profile({"points": [{"customdata": ["/funder/n%3Aabc", "x"]}]}) == "/funder/n%3Aabc"
    assert page._valid_key(["a"]) is None and page._valid_key("x" * 301) is None and page._valid_key("k") == "k"
    assert page._more(True) == 0 and page._more(-3) == 0 and page._more("7") == 0 and page._more(2) == 2
    hostile = cofunding.Node("<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "funder", 1.0, 0.5, 0.5, 0)
    figure = page.compute_network_figure(cofunding.Network((hostile,), (), 1, 0))
    go.Figure(figure)
    assert "<" not in str(figure["data"][1]["customdata"]) and "<" not in str(figure["data"][1]["text"])


def test_renderers_build_components(readers):
    fast = readers[1]
    filters = Filters(themes=("WASH",), countries=("KEN",))
    ranking = cofunding.rank_parties(fast, filters, "funder", 25)
    listed = page.render_ranking(ranking, "USD", filters)
    assert listed[0].children.startswith(f"{ranking.total} funder")
    assert len(listed[1].children) == len(ranking.parties)
    first = ranking.parties[0]
    assert page.profile_href("funder", first.key) in str(listed[1].children[0])
    basket = cofunding.basket(fast, Filters(funders=tuple(p.key for p in ranking.parties[:2])), "funder")
    rendered = page.render_basket(basket, "USD")
    assert "Basket: 2 funders compared" in str(rendered)
    assert page.render_basket(None, "USD") == []
    options = page.like_options(ranking, "crafted-key", None)
    assert options[0] == {"label": "crafted-key", "value": "crafted-key"}
    assert "Choose one funder" in str(page.render_similar(None, "USD"))


def test_page_layout_keeps_its_id_and_starts_hidden():
    from layouts import ids
    from layouts.cofunders import cofunders_page

    layout = cofunders_page()
    assert layout.id == ids.PAGE_COFUNDERS and layout.style == {"display": "none"}
    text_of = str(layout)
    for component_id in (ids.COFUNDERS_RANKING, ids.COFUNDERS_MORE, ids.COFUNDERS_LIKE, ids.COFUNDERS_SIMILAR,
                         ids.COFUNDERS_BASKET, ids.COFUNDERS_NETWORK, ids.COFUNDERS_NETWORK_NOTE):
        assert component_id in text_of
