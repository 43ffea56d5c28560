"""The table panel: source-record links only for real id forms, profile links, names with HTML kept as
text, the original amount on hover, the display currency, column choice and quick search in the URL,
pages under 100 KB, and the export links following the view."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from callbacks import export as export_cb
from callbacks import table as table_cb
from callbacks.context import AppContext
from callbacks.filters import parse_search, parse_view
from data_sources import fx
from data_sources.schema import COLUMN_NAMES
from layouts import table as table_layout
from tests.test_export import HTML_NAME, load_small_demo

ASSET = Path(__file__).resolve().parents[1] / "assets" / "fundatlas_table.js"


@pytest.mark.parametrize("source, record_id, url", [
    ("iati", "GB-GOV-1-300123#t4", "https://d-portal.org/ctrack.html#view=act&aid=GB-GOV-1-300123"),
    ("iati", "DE-1-201462044#b0", "https://d-portal.org/ctrack.html#view=act&aid=DE-1-201462044"),
    ("iati", "a b#t0", None), ("iati", "GB-1-2", None), ("iati", "#t1", None),
    ("iati", "XX-DEMO-D05-0002#t0", None),
    ("360giving", "360G-wellcome-12345", "https://grantnav.threesixtygiving.org/grant/360G-wellcome-12345"),
    ("360giving", "360G-x/../admin?y", "https://grantnav.threesixtygiving.org/grant/360G-x%2F..%2Fadmin%3Fy"),
    ("360giving", "360G-DEMO-F001-00001", None), ("360giving", "has space", None),
    ("ocha_fts", "213456", "https://fts.unocha.org/flows/213456"), ("ocha_fts", "21a", None),
    ("oecd_crs", "2019001234", None), ("hdx_3w", "row 4", None), ("iati", None, None),
])
def test_source_links_only_for_real_id_forms(source, record_id, url):
    assert table_cb.source_record_url(source, record_id) == url


def test_party_links_by_id_else_name():
    assert table_cb.party_href("funder", "GB-CHC-1", "Trust") == "/funder/GB-CHC-1"
    assert table_cb.party_href("recipient", None, "Water: A/B") == "/recipient/Water%3A%20A%2FB"
    assert table_cb.party_href("recipient", "", None) is None


def test_usd_tooltip_gives_the_original_amount_and_rate():
    assert table_cb.usd_tooltip({"amount": 1234.4, "currency": "EUR", "amount_usd": 1333.2, "fx_rate": 1.08}) \
        == "EUR 1,234 at 1.08 USD/EUR"
    assert table_cb.usd_tooltip({"amount": 50.0, "currency": "USD", "amount_usd": 50.0, "fx_rate": 1.0}) == "USD 50"
    note = "no annual rate for MNT in 2020"
    assert table_cb.usd_tooltip({"amount": 9.0, "currency": "MNT", "amount_usd": None, "fx_rate": None,
                                 "fx_note": note}) == f"MNT 9: {note}"


def test_names_with_html_are_text_cells():
    # The link cells are React elements with the name as a text child: no HTML is ever parsed.
    defs = {d["field"]: d for d in table_layout.column_defs()}
    for field in ("funder_name", "recipient_name", "record_id"):
        assert defs[field]["cellRenderer"] == "FundatlasLink"
    assert not any(d.get("cellRenderer") == "markdown" or "dangerously_allow_code" in d for d in defs.values())
    script = ASSET.read_text()
    assert "innerHTML" not in script and "dangerouslySetInnerHTML" not in script
    assert 'rel = "noopener noreferrer"' in script and 'target = "_blank"' in script
    row = {c: None for c in COLUMN_NAMES} | {"source": "iati", "record_id": "GB-1-2#t0", "recipient_name": HTML_NAME,
                                             "funder_name": "F"}
    shown = table_layout.shown_columns(None)
    page = table_cb.page_row(row, shown)
    assert page["recipient_name"] == HTML_NAME
    assert page["_rh"] == "/recipient/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%20Trust"


@pytest.fixture
def context(sqlite_engine, tmp_path):
    load_small_demo(sqlite_engine, tmp_path / "demo")
    return AppContext(sqlite_engine, use_columnar=False)


def test_pages_show_the_chosen_columns_and_the_display_currency(context):
    search = "?theme=WASH&currency=EUR&columns=year,record_id,amount_usd,funder_name,description,title"
    response = table_cb.compute_rows_response(context, search, {"startRow": 0, "endRow": 50, "sortModel": [
        {"colId": "amount_usd", "sort": "desc"}]})
    rows = response["rowData"]
    assert response["rowCount"] == context.reader().row_count(parse_search(search)[0]) > 50
    canonical = {"year", "record_id", "amount_usd", "funder_name", "description", "title"}
    assert {k for r in rows for k in r if not k.startswith("_")} == canonical
    factors, _note = fx.display_factors("EUR")
    for row in rows:
        if row["amount_usd"] is not None:
            assert row["_cur"] == pytest.approx(row["amount_usd"] * fx.display_factor(factors, row["year"]))
    assert [r["amount_usd"] for r in rows] == sorted((r["amount_usd"] for r in rows), reverse=True)
    with pytest.raises(ValueError):  # sorting by a column the table does not show
        table_cb.compute_rows_response(context, search, {"startRow": 0, "endRow": 50,
                                                         "sortModel": [{"colId": "country_name", "sort": "asc"}]})
    header = [d["headerName"] for d in table_layout.column_defs(parse_view(search).columns, "EUR")]
    assert "EUR (display)" in header


def test_a_page_of_every_column_stays_under_100_kb(context):
    search = "?columns=" + ",".join(COLUMN_NAMES)
    block = table_layout.block_rows(table_layout.shown_columns(COLUMN_NAMES))
    response = table_cb.compute_rows_response(context, search, {"startRow": 0, "endRow": block})
    assert len(response["rowData"]) == block and len(json.dumps(response).encode()) < 100_000
    long = [{"title": "x" * 5000, "description": "y" * 5000} for _ in range(500)]
    assert len(json.dumps(table_cb.fit_page(long)).encode()) < 100_000


def test_column_choice_and_quick_search_go_to_the_url():
    new = table_cb.with_columns("?theme=WASH", ["year", "title", "source"])
    assert parse_qs(new.removeprefix("?")) == {"theme": ["WASH"], "columns": ["source,title,year"]}
    assert parse_view(new).columns == ("source", "title", "year")
    assert table_cb.with_columns(new, list(table_layout.DEFAULT_COLUMNS)) == "?theme=WASH"  # defaults: no setting
    for crafted in (["year", "<img>"], [], "year", [{"x": 1}], None):
        assert table_cb.with_columns("?theme=WASH", crafted) is None
    assert table_cb.chosen_columns(parse_view("?columns=bogus")) == list(table_layout.DEFAULT_COLUMNS)
    searched = table_cb.with_quick_search("?theme=WASH&currency=EUR", "  borehole ")
    assert parse_qs(searched.removeprefix("?")) == {"theme": ["WASH"], "q": ["borehole"], "currency": ["EUR"]}
    assert table_cb.with_quick_search(searched, "") == "?theme=WASH&currency=EUR"
    assert table_cb.with_quick_search(searched, {"x": 1}) is None
    assert len(parse_search(table_cb.with_quick_search("", "z" * 5000))[0].q) == 200


def test_export_links_follow_filters_columns_and_currency():
    search = "?theme=WASH&metric=records&currency=GBP&columns=year,source"
    links = export_cb.compute_export_links(search)
    assert links[0] == "/export/csv?theme=WASH&currency=GBP&columns=source,year"
    assert links[3] == links[4] == "/export/manifest.json?theme=WASH&currency=GBP&columns=source,year"
    assert "/export/summary/place.xlsx?theme=WASH&currency=GBP&columns=source,year" in links
    assert export_cb.compute_export_links("?country=KEN")[0] == "/export/csv?country=KEN"
    assert export_cb.compute_export_links(None)[0] == "/export/csv"
