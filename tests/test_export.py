"""Export writers: CSV with BOM, formulas neutralised; GeoJSON points; XLSX readable."""

from __future__ import annotations

import csv
import io
import json

from openpyxl import load_workbook

from data_sources.export import iter_csv, iter_geojson, neutralise, write_xlsx
from data_sources.schema import COLUMN_NAMES


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
