"""Exports of the filtered allocation rows: CSV (UTF-8 with BOM, formulas neutralised), XLSX, GeoJSON.

The CLI's ``fundatlas export`` and the app's Export button both call ``write_export`` with the
same ``Filters``, so their files are identical. Rows are streamed: no cap, flat memory.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from sqlalchemy import Engine

from data_sources.filters import Filters
from data_sources.queries import iter_rows
from data_sources.schema import COLUMN_KINDS, COLUMN_NAMES

FORMATS = ("csv", "xlsx", "geojson")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
}
# A spreadsheet runs a text cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Text that a spreadsheet would run as a formula, prefixed with an apostrophe; other values as is."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _cell(column: str, value: object) -> object:
    if value is None:
        return ""
    if COLUMN_KINDS.get(column, "str") in ("str", "date"):
        return neutralise(str(value))
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


REPORT_COLUMNS = ("file", "record_id", "field", "reason")


def iter_csv(rows: Iterable[dict], columns: Sequence[str] = COLUMN_NAMES) -> Iterator[bytes]:
    """CSV bytes: a BOM, the header, then one line per row, in chunks of about 64 KiB.

    Columns outside the canonical table (e.g. a load report's) are text.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def drain() -> bytes:
        data = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return data.encode("utf-8")

    writer.writerow(columns)
    yield "\ufeff".encode() + drain()
    for row in rows:
        writer.writerow([_cell(c, row[c]) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield drain()
    tail = drain()
    if tail:
        yield tail


def iter_geojson(rows: Iterable[dict]) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection; rows without a point have a null geometry."""
    yield b'{"type":"FeatureCollection","features":['
    for index, row in enumerate(rows):
        geometry = None
        if row.get("lat") is not None and row.get("lon") is not None:
            geometry = {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
        properties = {c: row[c] for c in COLUMN_NAMES}
        feature = {"type": "Feature", "geometry": geometry, "properties": properties}
        yield (b"," if index else b"") + json.dumps(feature, ensure_ascii=False, allow_nan=False).encode()
    yield b"]}\n"


def write_xlsx(rows: Iterable[dict], out: BinaryIO) -> None:
    """An XLSX workbook written in constant memory (openpyxl write-only mode)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("allocations")
    sheet.append(list(COLUMN_NAMES))
    for row in rows:
        sheet.append([_cell(c, row[c]) for c in COLUMN_NAMES])
    workbook.save(out)


def export_chunks(engine: Engine, filters: Filters, fmt: str) -> Iterator[bytes]:
    """The export of the filtered rows as byte chunks (XLSX is built in a temporary file first)."""
    rows = iter_rows(engine, filters)
    if fmt == "csv":
        yield from iter_csv(rows)
    elif fmt == "geojson":
        yield from iter_geojson(rows)
    elif fmt == "xlsx":
        import tempfile

        with tempfile.TemporaryFile() as tmp:
            write_xlsx(rows, tmp)
            tmp.seek(0)
            yield from iter(lambda: tmp.read(1 << 20), b"")
    else:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_export(engine: Engine, filters: Filters, fmt: str, out: BinaryIO) -> None:
    for chunk in export_chunks(engine, filters, fmt):
        out.write(chunk)
