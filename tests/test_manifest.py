"""Export manifests on a two-stream store (SQLite and PostgreSQL): the files and their loads, the
exchange rates, the duplicate rules, the display currency; served as JSON, embedded in XLSX and
GeoJSON, named by the CSV response; the same from the CLI. The download routes refuse crafted queries."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
from openpyxl import load_workbook
from sqlalchemy import text as sql

from app import create_app
from data_sources import duplicates, fx
from data_sources.cli import main as cli_main
from data_sources.filters import Filters
from data_sources.manifest import DUPLICATE_RULES, build_manifest
from data_sources.queries import iter_rows
from data_sources.view import View
from tests.test_export import load_small_demo


@pytest.fixture
def loaded(engine, store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDATLAS_COLUMNAR", "0")  # the routes read the store; no copy needed
    files = load_small_demo(engine, tmp_path / "demo")
    return engine, store_url, files


def test_manifest_lists_files_rates_rules_and_display_currency(loaded):
    engine, _url, files = loaded
    filters = Filters(year_from=2018)
    manifest = build_manifest(engine, filters, View(currency="EUR"), query_string="year-from=2018&currency=EUR")
    rows = list(iter_rows(engine, filters))
    assert manifest["row_count"] == len(rows)
    assert manifest["duplicate_rows"] == sum(r["duplicate_of"] is not None for r in rows) == 3
    assert manifest["filters"] == {"year-from": ["2018"]} and manifest["query_string"] == "year-from=2018&currency=EUR"
    # Both streams' files, each with its load's status and date, and the rows it gave this export.
    per_file = Counter(r["source_file"] for r in rows)
    assert {f["source_file"]: f["rows"] for f in manifest["files"]} == per_file
    assert {f["source_file"] for f in manifest["files"]} == {str(p) for p in files}
    assert {f["source"] for f in manifest["files"]} == {"360giving", "iati"}
    with engine.connect() as conn:
        loads = {r.load_id: r for r in conn.execute(sql("SELECT load_id, status FROM loads"))}
    for entry in manifest["files"]:
        assert entry["status"] == loads[entry["load_id"]].status == "succeeded"
        assert entry["loaded_at"] and entry["loaded_at"][:4].isdigit()
    # Every currency-year pair among the rows, with the annual rate the loads use.
    pairs = Counter((r["currency"], r["year"]) for r in rows if r["currency"])
    assert {(e["currency"], e["year"]): e["rows"] for e in manifest["exchange_rates"]} == pairs
    assert len(pairs) > 3
    for entry in manifest["exchange_rates"]:
        assert (entry["usd_per_unit"], entry["note"]) == fx.usd_rate(entry["currency"], entry["year"])
    # The duplicate rules, every one the duplicates pass has.
    rules = {getattr(duplicates, n) for n in dir(duplicates) if n.startswith("RULE_")}
    assert {r["rule"] for r in manifest["duplicate_rules"]} == rules == set(DUPLICATE_RULES)
    assert all(len(r["does"]) > 40 for r in manifest["duplicate_rules"])
    factors, note = fx.display_factors("EUR")
    assert manifest["display_currency"]["note"] == note
    years = {r["year"] for r in rows}
    assert manifest["display_currency"]["per_usd_by_year"] == {str(y): fx.display_factor(factors, y) for y in years}


def _without_time(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("generated_at", "export")}


def test_routes_embed_and_link_the_manifest(loaded, tmp_path):
    engine, url, _files = loaded
    client = create_app(database_url=url, auto_demo=False).server.test_client()
    query = "theme=WASH&columns=source,record_id,alloc,amount_usd,year"
    served = client.get(f"/export/manifest.json?{query}").get_json()
    wash = list(iter_rows(engine, Filters(themes=("WASH",))))
    assert served["row_count"] == len(wash) > 20
    assert served["columns"] == ["source", "record_id", "alloc", "amount_usd", "year"]

    csv_response = client.get(f"/export/csv?{query}")
    assert csv_response.headers["X-Fundatlas-Manifest"] == f"/export/manifest.json?{query}"
    lines = list(csv.DictReader(io.StringIO(csv_response.data.decode("utf-8-sig"))))
    assert len(lines) == served["row_count"] == int(csv_response.headers["X-Fundatlas-Rows"])
    assert list(lines[0]) == served["columns"]

    geo = json.loads(client.get(f"/export/geojson?{query}").data)
    assert _without_time(geo["fundatlas_manifest"]) == _without_time(served)
    assert len(geo["features"]) == served["row_count"]

    book = load_workbook(io.BytesIO(client.get(f"/export/xlsx?{query}").data), read_only=True)
    assert book.sheetnames == ["allocations", "manifest"]
    cells = {r[0]: r[1] for r in book["manifest"].iter_rows(values_only=True) if r and len(r) > 1}
    assert cells["row_count"] == served["row_count"] and cells["query_string"] == query
    assert sum(1 for _ in book["allocations"].iter_rows()) - 1 == served["row_count"]

    summary = client.get("/export/summary/year.csv?theme=WASH&currency=GBP")
    assert summary.status_code == 200 and summary.headers["X-Fundatlas-Manifest"].endswith("theme=WASH&currency=GBP")
    assert summary.data.decode("utf-8-sig").splitlines()[0] == "year,amount_usd,amount_gbp,records,rows"

    # The CLI writes the same manifest (--manifest) and the same chosen columns.
    out, written = tmp_path / "cli.csv", tmp_path / "manifest.json"
    assert cli_main(["export", "--db", url, "--theme", "WASH", "--columns", "year,amount_usd,alloc,record_id,source",
                     "-o", str(out), "--manifest", str(written)]) == 0
    assert out.read_bytes() == csv_response.data
    assert _without_time(json.loads(written.read_text())) == _without_time(served)


@pytest.mark.parametrize("path", [
    "/export/csv?columns=year,evil", "/export/xlsx?columns=%3Cimg%20src%3Dx%3E", "/export/geojson?columns=row_id",
    "/export/manifest.json?columns=password", "/export/summary/evil.csv", "/export/summary/funder.exe",
    "/export/summary/funder.csv.xlsx", "/export/summary/funder..csv", "/export/summary/year.csv?currency=XXX",
    "/export/csv?country=nowhere",
    "/export/summary/place.xlsx?columns=a,b",
])
def test_crafted_download_queries_are_refused(demo_store, monkeypatch, path):
    monkeypatch.setenv("FUNDATLAS_COLUMNAR", "0")
    response = create_app(database_url=demo_store, auto_demo=False).server.test_client().get(path)
    assert response.status_code == 400
    assert response.data.startswith(b"Bad request: ") and b"Traceback" not in response.data
