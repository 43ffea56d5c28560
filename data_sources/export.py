"""Exports of the filtered allocation rows: CSV (UTF-8 with BOM, formulas neutralised), XLSX, GeoJSON.

The CLI's ``fundatlas export`` and the app's Export button both call ``write_export`` with the
same ``Filters``, so their files are identical. Rows are streamed: no cap, flat memory.
``columns`` picks canonical columns (always written in canonical order); a ``manifest``
(``data_sources.manifest``) is embedded where the format has room for it: an XLSX "manifest"
sheet, a GeoJSON top-level ``fundatlas_manifest`` member (CSV has none: the app links it beside
the file and names it in the ``X-Fundatlas-Manifest`` header; the CLI writes it with ``--manifest``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO

from sqlalchemy import Engine

from data_sources.filters import Filters
from data_sources.queries import iter_rows
from data_sources.schema import COLUMN_KINDS, COLUMN_NAMES
from data_sources.view import canonical_columns

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


def _cell(column: str, value: object, kinds: dict[str, str] = COLUMN_KINDS) -> object:
    if value is None:
        return ""
    if kinds.get(column, "str") in ("str", "date"):
        return neutralise(str(value))
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


REPORT_COLUMNS = ("file", "record_id", "field", "reason")


def iter_csv(rows: Iterable[dict], columns: Sequence[str] = COLUMN_NAMES,
             kinds: dict[str, str] = COLUMN_KINDS) -> Iterator[bytes]:
    """CSV bytes: a BOM, the header, then one line per row, in chunks of about 64 KiB.

    Columns outside ``kinds`` (e.g. a load report's) are text.
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
        writer.writerow([_cell(c, row[c], kinds) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield drain()
    tail = drain()
    if tail:
        yield tail


def iter_geojson(rows: Iterable[dict], columns: Sequence[str] = COLUMN_NAMES,
                 manifest: dict | None = None) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection, one feature at a time; rows without a point have a null geometry.
    The point comes from lat/lon whichever columns the properties hold."""
    head = b'{"type":"FeatureCollection",'
    if manifest is not None:
        # A foreign member (RFC 7946 section 6.1), before the features so a reader meets it first.
        head += b'"fundatlas_manifest":' + json.dumps(manifest, ensure_ascii=False, allow_nan=False,
                                                      default=str).encode() + b","
    yield head + b'"features":['
    for index, row in enumerate(rows):
        geometry = None
        if row.get("lat") is not None and row.get("lon") is not None:
            geometry = {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
        properties = {c: row[c] for c in columns}
        feature = {"type": "Feature", "geometry": geometry, "properties": properties}
        yield (b"," if index else b"") + json.dumps(feature, ensure_ascii=False, allow_nan=False).encode()
    yield b"]}\n"


def write_xlsx(rows: Iterable[dict], out: BinaryIO, columns: Sequence[str] = COLUMN_NAMES,
               manifest: dict | None = None, sheet_name: str = "allocations",
               kinds: dict[str, str] = COLUMN_KINDS) -> None:
    """An XLSX workbook written in constant memory (openpyxl write-only mode), with a "manifest"
    sheet after the rows when ``manifest`` is given."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_cell(c, row[c], kinds) for c in columns])
    if manifest is not None:
        manifest_sheet = workbook.create_sheet("manifest")
        for line in manifest_lines(manifest):
            manifest_sheet.append([neutralise(v) if isinstance(v, str) else v for v in line])
    workbook.save(out)


def manifest_lines(manifest: dict) -> Iterator[list[object]]:
    """The manifest as spreadsheet lines: ``key, value`` for plain members, then a titled block per
    list member (its items' keys as a header line)."""
    blocks = []
    for key, value in manifest.items():
        if isinstance(value, list):
            blocks.append((key, value))
        elif isinstance(value, dict):
            for sub, sub_value in value.items():
                yield [f"{key}.{sub}", _plain(sub_value)]
        else:
            yield [key, _plain(value)]
    for key, items in blocks:
        yield []
        yield [key]
        header = list(dict.fromkeys(k for item in items if isinstance(item, dict) for k in item))
        if header:
            yield header
            for item in items:
                yield [_plain(item.get(k)) for k in header]
        else:
            for item in items:
                yield [_plain(item)]


def _plain(value: object) -> object:
    """A value a spreadsheet cell holds: numbers and text as they are, the rest as JSON text."""
    if value is None or isinstance(value, str | int | float) and not isinstance(value, bool):
        return "" if value is None else value
    return json.dumps(value, ensure_ascii=False, default=str)


def xlsx_chunks(write: Callable[[BinaryIO], None]) -> Iterator[bytes]:
    # A ZIP's directory comes last: the workbook is built in a temporary file, then sent in chunks.
    with tempfile.TemporaryFile() as tmp:
        write(tmp)
        tmp.seek(0)
        yield from iter(lambda: tmp.read(1 << 20), b"")


def export_chunks(engine: Engine, filters: Filters, fmt: str, columns: Sequence[str] = COLUMN_NAMES,
                  manifest: dict | None = None) -> Iterator[bytes]:
    """The export of the filtered rows as byte chunks, ``columns`` in canonical order (ValueError for
    others); ``manifest`` embedded in XLSX and GeoJSON (a CSV has nowhere to put it)."""
    columns = choose_columns(columns)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows = iter_rows(engine, filters)
    if fmt == "csv":
        yield from iter_csv(rows, columns)
    elif fmt == "geojson":
        yield from iter_geojson(rows, columns, manifest)
    else:
        yield from xlsx_chunks(lambda out: write_xlsx(rows, out, columns, manifest))


def choose_columns(columns: Sequence[str] | str | None) -> tuple[str, ...]:
    """Canonical columns from a list (or a comma-separated text), in canonical order; all of them for
    None; ValueError (a ``ViewError``) naming what is not a canonical column."""
    if columns is None:
        return COLUMN_NAMES
    if isinstance(columns, str):
        columns = [c for c in columns.split(",") if c.strip()]
    return canonical_columns(list(columns))


def write_export(engine: Engine, filters: Filters, fmt: str, out: BinaryIO,
                 columns: Sequence[str] = COLUMN_NAMES, manifest: dict | None = None) -> None:
    for chunk in export_chunks(engine, filters, fmt, columns, manifest):
        out.write(chunk)
