"""Profile pages (/funder/<key>, /recipient/<key>): the shared-partners aggregate in SQL and over the
columnar copy against pandas, the profile's content, crafted paths, and the charts' profile links."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import select

from callbacks import charts
from callbacks import profile as profile_cb
from callbacks.context import AppContext
from callbacks.pages import profile_href
from callbacks.table import GRID_COLUMNS, party_href
from data_sources import columnar, organisations, profiles, queries
from data_sources.filters import Filters
from data_sources.store import open_store
from layouts import ids
from layouts.table import FUNDER_HREF

# --- an independent computation: pandas over the rows, party keys from the mentions table ---------


def _party_keys(engine, rows: pd.DataFrame, role: str) -> pd.Series:
    """Each row's party key as the docs define it: its (source, id, name) mention's org_key, else its id,
    else its name (NULL equal to NULL in the match)."""
    with engine.connect() as conn:
        mentions = pd.DataFrame(conn.execute(select(organisations.organisation_mentions)).mappings().all())
    mentions = mentions[mentions["role"] == role]
    lookup = {(m.source, m.party_id, m.party_name): m.org_key for m in mentions.itertuples(index=False)}

    def clean(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    keys = []
    for source, party_id, name in zip(rows["source"], rows[f"{role}_id"], rows[f"{role}_name"], strict=True):
        party_id, name = clean(party_id), clean(name)
        keys.append(lookup.get((source, party_id, name), party_id if party_id is not None else name))
    return pd.Series(keys, index=rows.index, dtype=object)


def _pandas_shared_partners(engine, role: str, key: str, limit: int) -> pd.DataFrame:
    other = profiles.OTHER[role]
    rows = pd.DataFrame(list(queries.iter_rows(engine, Filters())))
    rows = rows[rows["duplicate_of"].isna()].copy()
    rows["usd"] = rows["amount_usd"].fillna(0.0)
    rows["party"], rows["partner"] = _party_keys(engine, rows, role), _party_keys(engine, rows, other)
    own_ids = {(r["source"], r["record_id"], r["alloc"])
               for r in queries.iter_rows(engine, profiles.selection(role, key))}
    is_own = [(s, r, a) in own_ids for s, r, a in zip(rows["source"], rows["record_id"], rows["alloc"], strict=True)]
    own = rows[is_own]
    own_by_partner = own[own["partner"].notna()].groupby("partner")["usd"].sum()
    own_parties = set(own["party"].dropna())
    peers = rows[rows["party"].notna() & ~rows["party"].isin(own_parties) & rows["partner"].isin(own_by_partner.index)]
    pairs = peers.groupby(["party", "partner"])["usd"].sum().reset_index()
    pairs["own_usd"] = pairs["partner"].map(own_by_partner)
    out = pairs.groupby("party").agg(usd=("usd", "sum"), shared=("partner", "size"), own_usd=("own_usd", "sum"))
    out = out.reset_index().rename(columns={"party": "value"})
    return out.sort_values(["usd", "value"], ascending=[False, True], kind="stable").head(limit).reset_index(drop=True)


def _assert_peers_equal(left: pd.DataFrame, right: pd.DataFrame, columns=("value", "usd", "shared", "own_usd")):
    pd.testing.assert_frame_equal(left[list(columns)].reset_index(drop=True),
                                  right[list(columns)].reset_index(drop=True), check_dtype=False, rtol=1e-9)


@pytest.fixture
def demo_engine(engine, tmp_path):
    """The demo bundle in a fresh SQLite or PostgreSQL store."""
    from data_sources.cli import run_demo

    assert run_demo(engine, tmp_path / "files") == 0
    return engine


def _keys(engine, kind: str, n: int) -> list[str]:
    return [o["value"] for o in queries.options(engine, kind, "", n)]


def test_shared_partners_equal_in_sql_columnar_and_pandas(demo_engine, tmp_path):
    table = columnar.ensure(demo_engine, root=tmp_path / "copies")
    funders, recipients = _keys(demo_engine, "funder", 4), _keys(demo_engine, "recipient", 3)
    checked = 0
    for role, key in [*(("funder", k) for k in funders), *(("recipient", k) for k in recipients)]:
        sql = profiles.shared_partners_sql(demo_engine, role, key, "USD", 15)
        fast = profiles.shared_partners_columnar(table, role, key, "USD", 15)
        expected = _pandas_shared_partners(demo_engine, role, key, 15)
        assert len(sql) > 0, (role, key)  # demo funders share recipients: an empty answer would prove nothing
        _assert_peers_equal(sql, fast, ("value", "label", "usd", "shared", "own_usd"))
        _assert_peers_equal(sql, expected)
        assert key not in set(sql["value"])  # never its own co-funder
        checked += 1
    assert checked == 7


def test_shared_partners_in_another_currency_and_for_unknown_keys(demo_engine, tmp_path):
    table = columnar.ensure(demo_engine, root=tmp_path / "copies")
    key = _keys(demo_engine, "funder", 1)[0]
    usd = profiles.shared_partners_sql(demo_engine, "funder", key, "USD", 5)
    eur_sql = profiles.shared_partners_sql(demo_engine, "funder", key, "EUR", 5)
    eur_fast = profiles.shared_partners_columnar(table, "funder", key, "EUR", 5)
    pd.testing.assert_frame_equal(eur_sql, eur_fast, check_dtype=False, rtol=1e-9)
    assert set(eur_sql["value"]) <= set(profiles.shared_partners_sql(demo_engine, "funder", key, "USD", 50)["value"])
    assert not eur_sql["usd"].equals(usd["usd"])  # converted, not the dollar figures relabelled
    for role in profiles.ROLES:
        assert profiles.shared_partners_sql(demo_engine, role, "no such organisation").empty
        assert profiles.shared_partners_columnar(table, role, "no such organisation").empty


# --- the profile on the demo store ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_context(demo_store):
    engine = open_store(demo_store)
    context = AppContext(engine, use_columnar=True)
    assert context.wait_for_columnar()
    yield context
    engine.dispose()


def _text(component) -> str:
    """Every string in a component tree (what the page shows, and the links' hrefs)."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(_text(c) for c in component)
    parts = [_text(getattr(component, "children", None))]
    for attr in ("href", "title"):
        value = getattr(component, attr, None)
        if isinstance(value, str):
            parts.append(value)
    return " ".join(parts)


def _hrefs(component) -> list[str]:
    found = []
    if isinstance(component, list | tuple):
        for c in component:
            found += _hrefs(c)
        return found
    if component is None or isinstance(component, str | int | float):
        return found
    href = getattr(component, "href", None)
    if isinstance(href, str):
        found.append(href)
    return found + _hrefs(getattr(component, "children", None))


def test_funder_profile_shows_its_name_identifiers_totals_and_links(demo_context):
    engine = demo_context.engine
    key = _keys(engine, "funder", 1)[0]
    filters = Filters(funders=(key,))
    content, style, _grid, count, csv, xlsx, on_map = profile_cb.compute_profile_page(
        demo_context, profile_href("funder", key), "?currency=USD&funder=ignored")
    text = _text(content)
    identity = profiles.identity_for(engine, key)
    assert identity is not None and identity["display_name"] in text
    for entry in identity["ids"] + identity["names"]:
        assert entry["value"] in text
    head = queries.headline(engine, filters)
    assert f"{head.records:,}" in text and f"{head.recipients:,}" in text
    assert count == f"{queries.filtered_row_count(engine, filters):,} rows"
    assert style == {} and csv == f"/export/csv?{filters.to_query_string()}" and xlsx.startswith("/export/xlsx?funder=")
    assert on_map == f"/?{filters.to_query_string()}"  # the profile's rows; the URL's other filters do not apply
    *_rest, on_map_eur = profile_cb.compute_profile_page(demo_context, profile_href("funder", key), "?currency=EUR")
    assert on_map_eur == f"/?{filters.to_query_string()}&currency=EUR"  # the display currency carries over
    links = [h for h in _hrefs(content) if h.startswith(("/funder/", "/recipient/"))]
    top = queries.totals_by(engine, filters, "recipient", 10)
    assert [profile_href("recipient", v) for v in top["value"]] == [h for h in links if h.startswith("/recipient/")]
    peers = profiles.shared_partners_sql(engine, "funder", key, "USD", 10)
    assert [profile_href("funder", v) for v in peers["value"]] == [h for h in links if h.startswith("/funder/")]
    files = {f.rsplit("/", 1)[-1] for f in profiles.sources_of(engine, filters)["source_file"]}
    assert files and all(f in text for f in files)


def test_recipient_profile_ranks_its_funders_with_links(demo_context):
    engine = demo_context.engine
    key = _keys(engine, "recipient", 1)[0]
    content, *_rest = profile_cb.compute_profile_page(demo_context, profile_href("recipient", key), "?currency=GBP")
    funders = queries.totals_by(engine, Filters(recipients=(key,)), "funder", 10)
    assert len(funders) > 1
    hrefs = [h for h in _hrefs(content) if h.startswith("/funder/")]
    assert hrefs == [profile_href("funder", v) for v in funders["value"]]
    assert "£" in _text(content)  # the display currency


def test_profile_rows_page_through_the_organisations_rows(demo_context):
    engine = demo_context.engine
    key = _keys(engine, "funder", 2)[1]
    path = profile_href("funder", key)
    request = {"startRow": 0, "endRow": 50, "sortModel": [{"colId": "amount_usd", "sort": "desc"}]}
    response = profile_cb.compute_profile_rows(demo_context, path, request)
    expected, total = queries.table_page(engine, Filters(funders=(key,)), 0, 50, [("amount_usd", "desc")],
                                         columns=GRID_COLUMNS)
    assert response["rowCount"] == total and total > 50
    assert [{c: r[c] for c in GRID_COLUMNS} for r in response["rowData"]] == expected
    # The main table's links: each row's funder cell links to this profile (the demo's ids are local).
    assert {r[FUNDER_HREF] for r in response["rowData"]} <= {
        party_href("funder", r["funder_id"], r["funder_name"]) for r in queries.iter_rows(engine, Filters(
            funders=(key,)))}
    with pytest.raises(ValueError):
        profile_cb.compute_profile_rows(demo_context, "/funder/", {"startRow": 0, "endRow": 50})
    with pytest.raises(ValueError):
        profile_cb.compute_profile_rows(demo_context, path, {"startRow": 0, "endRow": 10**6})


CRAFTED = [
    "/funder/", "/funder", "/recipient/%20%20", "/funder/" + "x" * 5000, "/funder/" + "x" * 250,
    "/funder/%00", "/funder/a%00b", "/funder/%ZZ%", "/funder/%E2%80%AE%3Cscript%3E", "/nobody/GB-CHC-1",
    "/funder/..%2F..%2Fetc%2Fpasswd", "/recipient/%ff%fe", None, "",
]


@pytest.mark.parametrize("path", CRAFTED)
def test_crafted_paths_say_not_found_plainly(demo_context, path):
    content, style, _grid, count, csv, _xlsx, on_map = profile_cb.compute_profile_page(demo_context, path, None)
    assert getattr(content, "id", None) == "profile-not-found"
    assert "not" in _text(content).lower()
    assert style == {"display": "none"} and count == "" and csv == "/export/csv" and on_map == "/"


def test_unknown_key_is_a_plain_not_found(demo_context):
    content, *_rest = profile_cb.compute_profile_page(demo_context, "/recipient/No%20Such%20Charity", "")
    assert "No recipient is known by “No Such Charity”" in _text(content)
    assert profiles.compute_profile(demo_context.reader(), "funder", "No Such Charity") is None


def test_a_raw_name_profile_points_at_its_whole_identity(demo_context):
    engine = demo_context.engine
    key = _keys(engine, "funder", 1)[0]
    identity = profiles.identity_for(engine, key)
    raw_name = identity["names"][0]["value"]
    found = profiles.compute_profile(demo_context.reader(), "funder", raw_name)
    assert found is not None and found.name == identity["display_name"]
    assert found.row_count == queries.filtered_row_count(engine, Filters(funders=(raw_name,)))
    content, *_rest = profile_cb.compute_profile_page(demo_context, profile_href("funder", raw_name), "")
    if raw_name != key:
        assert profile_href("funder", key) in _hrefs(content)


def test_columnar_and_sql_profiles_agree(demo_context):
    from callbacks.context import SqlReader

    key = _keys(demo_context.engine, "funder", 3)[2]
    fast = profiles.compute_profile(demo_context.reader(), "funder", key, "EUR")
    slow = profiles.compute_profile(SqlReader(demo_context.engine), "funder", key, "EUR")
    assert fast.name == slow.name and fast.row_count == slow.row_count
    assert math.isclose(fast.headline.usd, slow.headline.usd, rel_tol=1e-9)
    for name in ("years", "themes", "countries", "partners", "peers"):
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(slow, name), check_dtype=False, rtol=1e-9)


# --- the charts' profile links ---------------------------------------------------------------------


def test_chart_profile_links_follow_the_bars(demo_context):
    filters = Filters(themes=("WASH",))
    for chart_id, role in ((ids.CHART_FUNDERS, "funder"), (ids.CHART_RECIPIENTS, "recipient")):
        assert ids.CHARTS[chart_id] == role and chart_id in ids.CHART_PROFILES
        totals = charts._breakdown(demo_context, filters, role, "USD")
        links = charts.compute_profile_links(totals, role)
        hrefs = _hrefs(links)
        expected = queries.totals_by(demo_context.engine, filters, role, 10)["value"]
        assert hrefs == [profile_href(role, v) for v in expected]
        assert all(h.startswith(f"/{role}/") for h in hrefs)
    assert charts.compute_profile_links(pd.DataFrame(columns=["label", "value", "usd"]), "funder") == []


def test_the_app_registers_the_profile_callbacks(demo_store):
    from app import create_app

    app = create_app(demo_store, auto_demo=False)
    outputs = " ".join(app.callback_map)
    for component_id in (ids.PROFILE_CONTENT, ids.PROFILE_TABLE, *ids.CHART_PROFILES.values()):
        assert component_id in outputs
    layout = app.layout()
    assert _find(layout, ids.PAGE_PROFILE).style == {"display": "none"}
    assert _find(layout, ids.PROFILE_TABLE) is not None


def _find(component, component_id):
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, component_id)
            if found is not None:
                return found
    return None
