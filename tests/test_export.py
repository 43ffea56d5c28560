"""Export writers: CSV with BOM, formulas neutralised; GeoJSON points; XLSX readable. Exports of a real
two-stream store (SQLite and PostgreSQL): exactly the filtered rows in every format, the columns
chosen, formulas neutralised; summary totals against pandas."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import text as sql

from data_sources import fx
from data_sources.export import export_chunks, iter_csv, iter_geojson, neutralise, write_xlsx
from data_sources.filters import Filters
from data_sources.queries import iter_rows
from data_sources.schema import COLUMN_NAMES
from data_sources.summaries import summary_chunks, summary_rows


def _row(**values) -> dict:
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(source="360giving", record_id="G-1", alloc=0, allocation_share=1.0, flow_type="grant",
               geo_level="country", source_file="/x.json", load_id=1)
    row.update(values)
    return row


def test_neutralise_prefixes_formula_starts_only():
    for text in ("=1+1", "+44 20", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    assert neutralise("Water trust") == "Water trust"
    assert neutralise(-2.5) == -2.5


def test_csv_has_bom_header_and_neutralised_text():
    rows = [_row(funder_name="=HYPERLINK(\"http://evil\")", amount=-50.0, title="Wells, pumps\nand taps")]
    data = b"".join(iter_csv(rows))
    assert data.startswith(b"\xef\xbb\xbf")
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert parsed[0] == list(COLUMN_NAMES)
    record = dict(zip(parsed[0], parsed[1], strict=True))
    assert record["funder_name"].startswith("'=")
    assert record["amount"] == "-50.0"  # numbers are not text: a negative amount stays a number
    assert record["title"] == "Wells, pumps\nand taps"
    assert record["country_iso3"] == ""


def test_csv_streams_many_rows_in_chunks():
    chunks = list(iter_csv(_row(record_id=f"G-{i}", title="x" * 100) for i in range(3000)))
    assert len(chunks) > 2
    assert b"".join(chunks).count(b"\r\n") == 3001


def test_geojson_points_and_null_geometry():
    data = json.loads(b"".join(iter_geojson([_row(lat=1.5, lon=30.1), _row(record_id="G-2")])))
    assert data["type"] == "FeatureCollection"
    assert data["features"][0]["geometry"] == {"type": "Point", "coordinates": [30.1, 1.5]}
    assert data["features"][1]["geometry"] is None
    assert list(data["features"][0]["properties"]) == list(COLUMN_NAMES)


def test_xlsx_round_trip(tmp_path):
    path = tmp_path / "out.xlsx"
    with open(path, "wb") as fh:
        write_xlsx([_row(funder_name="@evil", amount=12.5)], fh)
    sheet = load_workbook(path, read_only=True).active
    header, first = list(sheet.iter_rows(values_only=True))[:2]
    assert list(header) == list(COLUMN_NAMES)
    values = dict(zip(header, first, strict=True))
    assert values["funder_name"] == "'@evil" and values["amount"] == 12.5


# --- exports of a real store: exactly the filtered rows, the columns chosen ------------------------------

FORMULAS = ("=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1:A2)", "=HYPERLINK(\"http://evil\",\"x\")")
HTML_NAME = "<img src=x onerror=alert(1)> Trust"
CHOSEN = ("source", "record_id", "alloc", "funder_name", "amount_usd", "lat", "lon")  # canonical order


def load_small_demo(engine, folder) -> list:
    """A two-stream store (the demo's 360Giving and IATI files, small), some names a spreadsheet would
    run as formulas, one name with HTML, and a few rows marked as duplicates."""
    from data_sources.cli import after_writes, load_paths
    from data_sources.demo import write_demo_bundle

    files = [p for p in write_demo_bundle(folder, grants=120, activities=40) if p.suffix in (".json", ".xml")]
    assert load_paths(engine, files) == 0
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sql("SELECT row_id FROM allocations WHERE source = '360giving' "
                                               "ORDER BY row_id"))]
        for row_id, name in zip(ids[:len(FORMULAS)], FORMULAS, strict=True):
            conn.execute(sql("UPDATE allocations SET funder_name = :n, title = :n WHERE row_id = :r"),
                         {"n": name, "r": row_id})
        conn.execute(sql("UPDATE allocations SET recipient_name = :n WHERE row_id = :r"),
                     {"n": HTML_NAME, "r": ids[len(FORMULAS)]})
    after_writes(engine, ["organisations"])  # the changed names join their organisations' identities
    with engine.begin() as conn:
        # Rows another stream reports: listed in exports, left out of totals.
        conn.execute(sql("UPDATE allocations SET duplicate_of = 'iati:X#t0:0' WHERE row_id IN (:a, :b, :c)"),
                     {"a": ids[10], "b": ids[11], "c": ids[12]})
    return files


@pytest.fixture
def small_store(engine, tmp_path):
    load_small_demo(engine, tmp_path / "demo")
    return engine


def _parse(fmt: str, data: bytes, columns) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    if fmt == "geojson":
        return [f["properties"] for f in json.loads(data)["features"]]
    sheet = load_workbook(io.BytesIO(data), read_only=True)["allocations"]
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert list(header) == list(columns)
    return [dict(zip(header, r, strict=True)) for r in rows]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "geojson"])
def test_exports_hold_exactly_the_filtered_rows_with_the_columns_chosen(small_store, fmt):
    engine = small_store
    filters = Filters(themes=("WASH",), year_from=2018)
    # Given out of order: written in canonical order.
    data = b"".join(export_chunks(engine, filters, fmt, ("lon", "amount_usd", "record_id", "alloc", "source",
                                                         "funder_name", "lat")))
    rows = _parse(fmt, data, CHOSEN)
    assert list(rows[0]) == list(CHOSEN)
    expected = {(r["source"], r["record_id"], r["alloc"]) for r in iter_rows(engine, filters)}
    with engine.connect() as conn:  # an independent count, straight SQL
        count = conn.execute(sql("SELECT count(*) FROM allocations WHERE theme = 'WASH' AND year >= 2018")).scalar()
    got = [(r["source"], r["record_id"], int(r["alloc"])) for r in rows]
    assert len(got) == count == len(expected) > 50
    assert set(got) == expected
    usd = {(r["source"], r["record_id"], r["alloc"]): r["amount_usd"] for r in iter_rows(engine, filters)}
    assert all(float(r["amount_usd"]) == pytest.approx(usd[k]) for r, k in zip(rows, got, strict=True)
               if r["amount_usd"] not in (None, ""))


def test_all_rows_stream_however_many(small_store):
    # Every row, no cap: the unfiltered export equals the store's row count, in several chunks.
    chunks = list(export_chunks(small_store, Filters(), "csv"))
    with small_store.connect() as conn:
        count = conn.execute(sql("SELECT count(*) FROM allocations")).scalar()
    assert b"".join(chunks).decode("utf-8-sig").count("\r\n") - 1 == count
    assert len(chunks) > 1


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_formula_cells_neutralised_in_a_real_export(small_store, fmt):
    rows = _parse(fmt, b"".join(export_chunks(small_store, Filters(sources=("360giving",)), fmt)), COLUMN_NAMES)
    names = {r["funder_name"] for r in rows}
    for formula in FORMULAS:
        assert "'" + formula in names and formula not in names
    assert HTML_NAME in {r["recipient_name"] for r in rows}  # text that is not a formula: untouched


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "geojson"])
def test_recipient_country_follows_allocation_basis_with_the_stored_values(small_store, fmt):
    columns = list(COLUMN_NAMES)
    assert columns[-2:] == ["allocation_basis", "recipient_country_iso3"]  # after the contract's columns
    rows = _parse(fmt, b"".join(export_chunks(small_store, Filters(sources=("360giving",)), fmt)), COLUMN_NAMES)
    assert list(rows[0])[-2:] == ["allocation_basis", "recipient_country_iso3"]
    stored = {(r["record_id"], r["alloc"]): r["recipient_country_iso3"]
              for r in iter_rows(small_store, Filters(sources=("360giving",)))}
    got = {(r["record_id"], int(r["alloc"])): r["recipient_country_iso3"] or None for r in rows}
    assert got == stored and any(stored.values())  # the demo's grantees say where they are based


def test_unknown_columns_are_refused():
    from data_sources.export import choose_columns

    assert choose_columns("year,source") == ("source", "year")
    for bad in ("year,evil", "row_id", "", "=1+1"):
        with pytest.raises(ValueError):
            list(choose_columns(bad))


def _expected_summary(engine, filters, keys, currency="EUR") -> pd.DataFrame:
    """The summary computed here, with pandas over the rows: duplicates out, money in USD and EUR."""
    frame = pd.DataFrame(list(iter_rows(engine, filters)))
    frame = frame[frame["duplicate_of"].isna()].copy()
    factors, _note = fx.display_factors(currency)
    frame["shown"] = frame["amount_usd"] * frame["year"].map(lambda y: fx.display_factor(factors, y))
    frame["record"] = frame["source"] + ":" + frame["record_id"]
    grouped = frame.groupby(keys, dropna=False).agg(usd=("amount_usd", "sum"), shown=("shown", "sum"),
                                                    records=("record", "nunique"), rows=("record", "size"))
    return grouped.reset_index()


@pytest.mark.parametrize("by, keys", [("year", ["year"]), ("place", ["country_iso3", "admin1_pcode"])])
def test_summary_totals_match_pandas(small_store, by, keys):
    filters = Filters(year_from=2017)
    got = pd.DataFrame(summary_rows(small_store, filters, by, "EUR"))
    want = _expected_summary(small_store, filters, keys)
    for frame in (got, want):  # empty places: one key on both sides
        frame[keys] = frame[keys].astype(object).where(frame[keys].notna(), "")
    merged = want.merge(got, on=keys, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(got) > 3
    assert merged["amount_usd"].to_numpy() == pytest.approx(merged["usd"].to_numpy())
    assert merged["amount_eur"].to_numpy() == pytest.approx(merged["shown"].to_numpy())
    assert (merged["records_x"] == merged["records_y"]).all() and (merged["rows_x"] == merged["rows_y"]).all()


@pytest.mark.parametrize("role", ["funder", "recipient"])
def test_party_summaries_match_pandas(small_store, role):
    # The demo's organisations are one identity per id: grouping the rows by id (else name) gives them.
    filters = Filters()
    frame = pd.DataFrame(list(iter_rows(small_store, filters)))
    frame["party"] = frame[f"{role}_id"].fillna(frame[f"{role}_name"])
    counted = frame[frame["duplicate_of"].isna()]
    expected = sorted((round(g["amount_usd"].sum(), 2), g.assign(r=g["source"] + g["record_id"])["r"].nunique(),
                       len(g)) for _k, g in counted.groupby("party"))
    got = summary_rows(small_store, filters, role, "USD")
    assert sorted((round(r["amount_usd"], 2), r["records"], r["rows"]) for r in got) == expected
    assert "amount_usd" in got[0] and f"{role}_name" in got[0] and "amount_gbp" not in got[0]
    assert sum(r["rows"] for r in got) == len(counted)  # counted once: the three duplicates are out


def test_summary_files(small_store):
    data = b"".join(summary_chunks(small_store, Filters(), "year", "csv", "GBP"))
    lines = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(lines[0]) == ["year", "amount_usd", "amount_gbp", "records", "rows"]
    assert [int(r["year"]) for r in lines] == sorted(int(r["year"]) for r in lines)
    book = load_workbook(io.BytesIO(b"".join(summary_chunks(small_store, Filters(), "funder", "xlsx", "USD",
                                                            {"row_count": 1}))), read_only=True)
    assert book.sheetnames == ["by funder", "manifest"]
