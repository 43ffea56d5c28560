"""Loader for any funder's own table: a CSV or XLSX export read with a small declarative mapping.

A table is never detected from its content (``detect`` is always False): the user names the
format and a mapping file, ``fundatlas load FILE --format table --mapping MAPPING.toml``. The
mapping (TOML, or YAML when PyYAML is installed) says which column holds what; every key is in
docs/mapping.md and docs/example-mapping.toml is a working example. One ``SourceRecord`` per
non-blank data row; ``source`` is ``table``.

Mapping
-------
* Sections: ``[table]`` (how to read the file), ``[columns]`` (field = column title),
  ``[constants]`` (field = value, for fields the table lacks *and* for a mapped column's empty
  cells), ``[options]`` (how to read values). Unknown sections and keys are errors, with a
  "did you mean" suggestion (difflib) or the section a misplaced key belongs in.
* Required: ``amount``, ``currency``, ``funder``, and a ``date`` or ``year``, each as a column or a
  constant. ``flow_type`` must be one of ``schema.FLOW_TYPES`` (default ``grant``).
* Every mapping error is a ``MappingError`` (a ``LoadError``) whose ``file`` is the mapping file
  and whose ``field`` is the key (``columns.amount``); its message names both.
* After the header row is read, every mapped column must be in it (titles match
  case-insensitively, whitespace-tolerantly, exactly once); else a ``MappingError`` listing the
  file's columns.

Reading the file
----------------
* XLSX (zip content): the sheet ``[table] sheet`` (hidden or not), default the first visible one;
  values as stored (openpyxl read-only, cached formula results; a formula saved without a value
  rejects its row naming the field; merged cells as ``textfiles`` says, "XLSX"). CSV (anything
  else): encoding and delimiter sniffed unless ``[table] encoding`` / ``delimiter`` say; a line
  over 1 MiB is a ``LoadError``, a last row cut short is rejected as truncated. Old binary .xls is
  refused with a hint.
* ``[table] header_row`` (1-based, default 1) is the column titles; rows above it are ignored,
  rows below are data. A row whose cells are all empty is skipped and not counted.
* Row numbers in messages are spreadsheet row numbers (CSV: record numbers, header included).

Rows to records
---------------
* ``record_id`` = ``"{prefix}:{id cell}"``; the prefix is ``[table] source_name``, else the mapping
  file's stem (else, for a mapping given as a dict, the data file's stem). The store keeps one
  record per (source ``table``, record_id), so the prefix keeps two funders' ``G-1`` apart, and
  the same grant in next year's export (same mapping, same id) is recognised as already stored.
  Without an ``id`` column the id is ``"{prefix}:{file name}:row {n}"``: unique in one file only.
  A missing id, or an id seen earlier in the file, rejects the row.
* ``amount``: numbers as stored, or text with thousands separators, currency symbols and spaces
  (``"12,500"``, ``"£1 250.50"``); ``[options] decimal_separator = ","`` reads ``"12.500,50"``.
  Column values are multiplied by ``amount_multiplier``. Missing (and no constant) or not a number
  -> rejected. ``currency`` is upper-cased and must be three letters.
* ``date``: Excel date cells (and serial numbers in XLSX), else ``[options] date_format``
  (``strptime``) when given, else ISO ``yyyy-mm-dd`` (time part ignored), ``yyyy/mm/dd`` or
  day-first ``dd/mm/yyyy`` (``/``, ``.`` or ``-``). ``year`` is the date's year; the ``year``
  column or constant is used only for rows without a date. Neither, or a year outside
  1900-2100 -> rejected. ``start_date`` / ``end_date`` are read the same way but an unreadable one
  is left empty (such columns often hold "ongoing").
* ``funder`` (name) or ``funder_id`` must be present on each row (cell or constant).
* Places: ``country``, ``place`` (-> ``admin1_name``) and ``region`` cells may list several
  values split on ``[options] separator`` (default ``;``). One place per country (an even split
  of the amount); places pair with countries one to one, or all lie in the row's single country;
  other counts -> rejected. A country value that is not a country (``"Africa, regional"``,
  ``"Global"``) is kept as the place's region. ``region`` values make places only on rows with no
  country. ``latitude`` / ``longitude`` make a record point (allocation puts it in the place
  whose country contains it); one without the other, not a number or out of range -> rejected.
* ``sector``: DAC purpose codes, 5 or 3 digits, optionally followed by a name (``"14030 - Basic
  drinking water"``), several split on the separator (even split). Anything else -> rejected.
  ``source_sector`` is the sector cell and ``sector_text`` joined with "; "; ``sector_text`` is
  also the theme hint for rows whose code gives no theme.
* ``flow_type`` column values are lower-cased and must be in ``schema.FLOW_TYPES``.
* Rejections name the column title as written in the file (``[constants] KEY`` when the value
  came from the mapping).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from . import textfiles
from .errors import LoadError, Rejection
from .records import Place, SectorShare, SourceRecord
from .schema import FLOW_TYPES

# The value parsers live in textfiles, shared with the other loaders; cell_text, parse_amount,
# parse_date and sniff_delimiter stay importable from here, where they were first written.
from .textfiles import cell_at, cell_text, parse_amount, parse_date
from .textfiles import sniff_delimiter as sniff_delimiter

NAME = "table"

NO_MAPPING = "a table needs a mapping file: fundatlas load FILE --format table --mapping MAPPING.toml"

# [columns] keys, in the order docs/mapping.md lists them. Every one but ``id`` may be a constant.
COLUMN_KEYS: tuple[str, ...] = (
    "id",
    "funder", "funder_id", "funder_type",
    "recipient", "recipient_id", "recipient_type", "recipient_country", "implementer",
    "title", "description",
    "amount", "currency", "flow_type",
    "date", "year", "start_date", "end_date",
    "country", "place", "region", "latitude", "longitude",
    "sector", "sector_text",
)  # fmt: skip
# How a constant of each field is checked; fields not listed are text.
_CONSTANT_KINDS = {
    "amount": "number", "currency": "currency", "flow_type": "flow_type",
    "date": "date", "start_date": "date", "end_date": "date", "year": "year",
    "latitude": "latitude", "longitude": "longitude", "sector": "sector",
}  # fmt: skip
CONSTANT_KEYS: tuple[str, ...] = tuple(k for k in COLUMN_KEYS if k != "id")
TABLE_KEYS: tuple[str, ...] = ("source_name", "sheet", "header_row", "delimiter", "encoding")
OPTION_KEYS: tuple[str, ...] = ("date_format", "amount_multiplier", "separator", "decimal_separator")
SECTIONS: dict[str, tuple[str, ...]] = {
    "table": TABLE_KEYS,
    "columns": COLUMN_KEYS,
    "constants": CONSTANT_KEYS,
    "options": OPTION_KEYS,
}

_CURRENCY = re.compile(r"[A-Z]{3}")
_SECTOR = re.compile(r"(\d{5}|\d{3})(?:\.0)?(?:\s*[-–:]\s*|\s+)?(.*)")


# --------------------------------------------------------------------------- the mapping


class MappingError(LoadError):
    """A mapping that cannot be used. ``file`` is the mapping, ``field`` the key (``columns.amount``)."""

    def __init__(self, file: str, reason: str, key: str | None = None):
        super().__init__(file, reason)  # the reason names the key itself, so it is not repeated
        self.field = key


@dataclass(frozen=True)
class TableMapping:
    """A validated mapping. ``columns``: field -> column title; ``constants``: field -> checked value."""

    origin: str  # the mapping file (or "mapping" for one given as a dict), named in errors
    source_name: str | None = None  # record id prefix; None: the data file's stem
    sheet: str | None = None
    header_row: int = 1
    delimiter: str | None = None
    encoding: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    date_format: str | None = None
    amount_multiplier: float = 1.0
    separator: str = ";"
    decimal_separator: str = "."

    def fingerprint(self) -> str:
        """A hash of everything that changes what the mapping reads (not where the file lies).

        Loading should mix it into the data file's checksum, so that the same file loaded again
        with a corrected mapping is reloaded rather than reported unchanged.
        """
        content = {k: v for k, v in vars(self).items() if k != "origin"}
        text = json.dumps(content, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_mapping(path: Path | str) -> TableMapping:
    """Read and validate a mapping file: TOML, or YAML (``.yaml``/``.yml``) when PyYAML is installed."""
    path = Path(path)
    origin = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MappingError(origin, f"cannot read the mapping file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingError(origin, f"the mapping file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _parse_yaml(text, origin)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message ends with "(at line L, column C)".
            raise MappingError(origin, f"not valid TOML: {exc}") from exc
    return parse_mapping(data, origin, default_name=path.stem)


def _parse_yaml(text: str, origin: str) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise MappingError(
            origin,
            "a YAML mapping needs PyYAML, which is not installed (pip install pyyaml); "
            "or write the mapping as TOML, like docs/example-mapping.toml",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MappingError(origin, f"not valid YAML{where}: {problem}") from exc
    return {} if data is None else data


def parse_mapping(data: Any, origin: str = "mapping", default_name: str | None = None) -> TableMapping:
    """Validate a mapping already parsed into dicts (sections as in the file)."""
    if not isinstance(data, Mapping):
        raise MappingError(origin, "a mapping is a set of sections ([table], [columns], [constants], [options])")
    _check_keys(data, origin)
    table = data.get("table", {})
    columns = {key: _column_title(origin, key, value) for key, value in data.get("columns", {}).items()}
    constants = {key: _constant(origin, key, value) for key, value in data.get("constants", {}).items()}
    options = data.get("options", {})

    def need(key: str, what: str) -> None:
        if key not in columns and key not in constants:
            raise MappingError(
                origin,
                f"no {what}: map a column ([columns] {key} = \"Column title\") or give a constant "
                f"([constants] {key} = ...)",
                key=f"columns.{key}",
            )

    need("funder", "funder")
    need("amount", "amount")
    need("currency", "currency")
    if not {"date", "year"} & (columns.keys() | constants.keys()):
        raise MappingError(
            origin,
            'no date: map a date column ([columns] date = "Date awarded"), a year column '
            '([columns] year = "Year") or give a constant year ([constants] year = 2024)',
            key="columns.date",
        )
    for section, given in (("columns", columns), ("constants", constants)):
        if ("latitude" in given) != ("longitude" in given):
            has, missing = ("latitude", "longitude") if "latitude" in given else ("longitude", "latitude")
            raise MappingError(origin, f"[{section}] has {has} but no {missing}: give both", key=f"{section}.{missing}")

    header_row = table.get("header_row", 1)
    if isinstance(header_row, bool) or not isinstance(header_row, int) or header_row < 1:
        raise MappingError(origin, f"[table] header_row must be a row number (1 or more), not {header_row!r}",
                           key="table.header_row")
    encoding = _optional_text(origin, "table", "encoding", table.get("encoding"))
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise MappingError(origin, f"[table] encoding {encoding!r} is not a known text encoding",
                               key="table.encoding") from exc
    delimiter = table.get("delimiter")
    if delimiter is not None and not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise MappingError(origin, f"[table] delimiter must be one character (such as \",\" or \";\"), not "
                           f"{delimiter!r}", key="table.delimiter")

    date_format = _optional_text(origin, "options", "date_format", options.get("date_format"))
    if date_format is not None:
        try:
            sample = datetime(2001, 2, 3)
            datetime.strptime(sample.strftime(date_format), date_format)
        except ValueError as exc:
            raise MappingError(origin, f"[options] date_format {date_format!r} is not a usable strptime format "
                               f"(such as \"%d/%m/%Y\"): {exc}", key="options.date_format") from exc
        if "%" not in date_format:
            raise MappingError(origin, f"[options] date_format {date_format!r} has no % directive "
                               "(such as \"%d/%m/%Y\")", key="options.date_format")
    multiplier = options.get("amount_multiplier", 1)
    if (isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or not _finite(multiplier)
            or multiplier <= 0):
        raise MappingError(origin, f"[options] amount_multiplier must be a number greater than 0, not "
                           f"{multiplier!r}", key="options.amount_multiplier")
    separator = options.get("separator", ";")
    if not isinstance(separator, str) or not separator.strip():
        raise MappingError(origin, f"[options] separator must be a non-blank text such as \";\", not {separator!r}",
                           key="options.separator")
    decimal = options.get("decimal_separator", ".")
    if decimal not in (".", ","):
        raise MappingError(origin, f"[options] decimal_separator must be \".\" or \",\", not {decimal!r}",
                           key="options.decimal_separator")

    return TableMapping(
        origin=origin,
        source_name=_optional_text(origin, "table", "source_name", table.get("source_name")) or default_name,
        sheet=_optional_text(origin, "table", "sheet", table.get("sheet")),
        header_row=header_row,
        delimiter=delimiter,
        encoding=encoding,
        columns=columns,
        constants=constants,
        date_format=date_format,
        amount_multiplier=float(multiplier),
        separator=separator,
        decimal_separator=decimal,
    )


def _finite(value: int | float) -> bool:
    """Whether a TOML number is finite as a float (math.isfinite raises OverflowError on a huge integer)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _suggestion(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_keys(data: Mapping[str, Any], origin: str) -> None:
    for name, section in data.items():
        if not isinstance(section, Mapping):
            homes = [f"[{s}]" for s, keys in SECTIONS.items() if name in keys]
            where = f"; put it under {' or '.join(homes)}" if homes else ""
            raise MappingError(origin, f"key {name!r} is outside any section{where}", key=str(name))
        if name not in SECTIONS:
            close = difflib.get_close_matches(str(name), list(SECTIONS), n=1, cutoff=0.6)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise MappingError(
                origin, f"unknown section [{name}]{hint} (sections are [table], [columns], [constants], [options])",
                key=str(name),
            )
        for key in section:
            if key in SECTIONS[name]:
                continue
            homes = [f"[{s}]" for s, keys in SECTIONS.items() if key in keys]
            if homes:
                hint = f"; {key!r} belongs in {' or '.join(homes)}"
            else:
                hint = _suggestion(str(key), SECTIONS[name]) or f" (keys are: {', '.join(SECTIONS[name])})"
            raise MappingError(origin, f"unknown key {key!r} in [{name}]{hint}", key=f"{name}.{key}")


def _optional_text(origin: str, section: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise MappingError(origin, f"[{section}] {key} must be a non-empty text, not {value!r}",
                           key=f"{section}.{key}")
    return value.strip()


def _column_title(origin: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MappingError(origin, f"[columns] {key} must be a column title (a non-empty text), not {value!r}",
                           key=f"columns.{key}")
    return value.strip()


def _constant(origin: str, key: str, value: Any) -> Any:
    """The checked constant of field ``key``, in the form rows use (e.g. a ``date``, a float)."""
    kind = _CONSTANT_KINDS.get(key, "text")

    def bad(expected: str) -> MappingError:
        return MappingError(origin, f"[constants] {key} must be {expected}, not {value!r}", key=f"constants.{key}")

    if kind == "flow_type":
        if value not in FLOW_TYPES:
            hint = _suggestion(str(value), FLOW_TYPES)
            raise MappingError(
                origin, f"[constants] flow_type {value!r} is not one of: {', '.join(FLOW_TYPES)}{hint}",
                key="constants.flow_type",
            )
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            raise bad("a number")
        return float(value)
    if kind in ("latitude", "longitude"):
        limit = 90 if kind == "latitude" else 180
        if isinstance(value, bool) or not isinstance(value, int | float) or not -limit <= value <= limit:
            raise bad(f"a number from -{limit} to {limit}")
        return float(value)
    if kind == "year":
        if isinstance(value, bool) or not isinstance(value, int) or not 1900 <= value <= 2100:
            raise bad("a year from 1900 to 2100")
        return value
    if kind == "date":
        try:
            found = parse_date(value) if isinstance(value, str | date) else None
        except ValueError:
            found = None
        if found is None:
            raise bad("a date (2024-03-31)")
        return found
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise bad("a non-empty text")
    text = str(value).strip()
    if kind == "currency":
        if not _CURRENCY.fullmatch(text.upper()):
            raise bad("a three-letter ISO 4217 code such as \"GBP\"")
        return text.upper()
    if kind == "sector":
        try:
            parse_sectors(text, ";")
        except ValueError as exc:
            raise bad("a DAC purpose code such as \"14030\"") from exc
    return text


# --------------------------------------------------------------------------- values


def parse_sectors(text: str, separator: str) -> list[SectorShare]:
    """DAC purpose codes ("14030", "14030 - Basic drinking water; 12220") as an even split."""
    sectors = []
    for item in split_cell(text, separator):
        m = _SECTOR.fullmatch(item)
        if not m:
            raise ValueError(f"not a DAC purpose code (5 or 3 digits): {item!r}; map free text to sector_text")
        sectors.append(SectorShare(code=m[1], name=m[2].strip() or None))
    return sectors


def split_cell(text: str, separator: str) -> list[str]:
    """The non-empty, stripped items of a cell that lists several values."""
    return [part.strip() for part in text.split(separator) if part.strip()]


# --------------------------------------------------------------------------- reading


def detect(head: bytes) -> bool:
    """Always False: a table cannot be recognised from its content; it needs a mapping."""
    return False


def read(
    path: Path | str, mapping: Path | str | Mapping[str, Any] | TableMapping | None = None
) -> Iterator[SourceRecord | Rejection]:
    """Yield one ``SourceRecord`` per data row of a CSV or XLSX table, or a ``Rejection``.

    ``mapping`` is a mapping file, its parsed content (a dict) or a ``TableMapping``; the mapping is
    checked here, the file's columns when iteration starts.
    """
    path = Path(path)
    if mapping is None:
        raise LoadError(str(path), NO_MAPPING)
    if isinstance(mapping, TableMapping):
        table = mapping
    elif isinstance(mapping, Mapping):
        table = parse_mapping(mapping)
    else:
        table = load_mapping(mapping)
    return _read(path, table)


def _read(path: Path, mapping: TableMapping) -> Iterator[SourceRecord | Rejection]:
    head = textfiles.read_head(path)
    if not head.strip():  # (whitespace only, too: it has no header row to match the mapping to)
        raise LoadError(str(path), "the file is empty")
    textfiles.refuse_old_xls(path, head)
    if head.startswith(textfiles.XLSX_MAGIC):
        yield from _read_xlsx(path, mapping)
    else:
        yield from _read_csv(path, mapping)


def _read_xlsx(path: Path, mapping: TableMapping) -> Iterator[SourceRecord | Rejection]:
    with textfiles.open_workbook(path) as wb:
        ws = _sheet(wb, path, mapping)
        rows = textfiles.sheet_rows(ws, min_row=mapping.header_row)
        header = next(rows, None)
        if header is None:
            raise LoadError(str(path), f"sheet {ws.title!r} has no row {mapping.header_row} "
                            "([table] header_row) to read the column titles from")
        yield from _Rows(path, mapping, f"sheet {ws.title!r}", list(header[1]), excel=True).records(rows)


def _sheet(wb: Any, path: Path, mapping: TableMapping) -> Any:
    if not wb.worksheets:
        raise LoadError(str(path), "the workbook has no sheet")
    if mapping.sheet is None:
        # The first sheet a person sees: hidden ones (lookup lists, old copies) are read only by name.
        shown = [ws for ws in wb.worksheets if textfiles.visible(ws)]
        return (shown or wb.worksheets)[0]
    names = wb.sheetnames
    wanted = " ".join(mapping.sheet.split()).casefold()
    for name in names:
        if " ".join(name.split()).casefold() == wanted:
            return wb[name]
    raise MappingError(
        mapping.origin,
        f"sheet {mapping.sheet!r} named in [table] sheet is not in {path}; sheets are: "
        f"{', '.join(repr(n) for n in names)}{_suggestion(mapping.sheet, names)}",
        key="table.sheet",
    )


def _read_csv(path: Path, mapping: TableMapping) -> Iterator[SourceRecord | Rejection]:
    encoding = mapping.encoding or textfiles.sniff_encoding(path)
    try:
        with textfiles.open_text(path, encoding) as fh:
            delimiter = mapping.delimiter or textfiles.sniff_header_delimiter(fh, mapping.header_row)
            lines = textfiles.BoundedLines(fh, str(path))
            reader = csv.reader(lines, delimiter=delimiter)
            try:
                rows = enumerate(reader, start=1)
                header = None
                for rownum, values in rows:
                    if rownum == mapping.header_row:
                        header = values
                        break
                if header is None:
                    raise LoadError(str(path), f"the file has no row {mapping.header_row} ([table] header_row) "
                                    "to read the column titles from")
                label = f"the header row (row {mapping.header_row})"
                yield from _Rows(path, mapping, label, list(header), excel=False).records(rows, lines, delimiter)
            except csv.Error as exc:
                raise LoadError(str(path), f"CSV cannot be parsed near line {reader.line_num}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise LoadError(str(path), f"the file is not {encoding} text ({exc.reason} at byte {exc.start}); "
                        "set [table] encoding") from exc


def _norm_title(value: Any) -> str:
    text = cell_text(value) or ""
    return " ".join(text.replace("\ufeff", "").split()).casefold()


class _Bad(ValueError):
    """A row's value that cannot be used: ``key`` is the mapping field, ``reason`` for the user."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key
        self.reason = reason


class _Rows:
    """Turns the data rows of one table into records, once its header is matched to the mapping."""

    def __init__(self, path: Path, mapping: TableMapping, label: str, header: list[Any], excel: bool):
        self.path = path
        self.mapping = mapping
        self.excel = excel
        self.prefix = mapping.source_name or path.stem
        self.header = header
        self.index: dict[str, int] = {}
        self.titles: dict[str, str] = {}
        titles = [_norm_title(h) for h in header]
        shown = [cell_text(h) for h in header if _norm_title(h)]
        for key, title in mapping.columns.items():
            found = [i for i, t in enumerate(titles) if t == _norm_title(title)]
            if not found:
                listed = ", ".join(repr(s) for s in shown) or "(none)"
                raise MappingError(
                    mapping.origin,
                    f"column {title!r} named in mapping for {key} is not in {label} of {path}; "
                    f"columns are: {listed}{_suggestion(title, [s for s in shown if s])}",
                    key=f"columns.{key}",
                )
            if len(found) > 1:
                where = " and ".join(str(i + 1) for i in found)
                raise MappingError(
                    mapping.origin,
                    f"column {title!r} named in mapping for {key} appears {len(found)} times in {label} of "
                    f"{path} (columns {where}); rename one so the mapping is unambiguous",
                    key=f"columns.{key}",
                )
            self.index[key] = found[0]
            self.titles[key] = cell_text(header[found[0]]) or title

    def records(
        self, rows: Iterable[tuple[int, Iterable[Any]]], lines: textfiles.BoundedLines | None = None,
        delimiter: str = ",",
    ) -> Iterator[SourceRecord | Rejection]:
        seen: dict[str, int] = {}
        for rownum, values in rows:
            cells = list(values)
            if all(cell_text(v) is None for v in cells):
                continue
            if lines is not None and (cut := textfiles.cut_short(lines, cells, len(self.header), delimiter)):
                column, reason = cut  # a truncated file's last row
                title = cell_text(self.header[column]) if column < len(self.header) else None
                yield Rejection(f"row {rownum}", title or f"column {column + 1}", reason)
                continue
            result = self.convert(rownum, cells)
            if isinstance(result, SourceRecord):
                first = seen.setdefault(result.record_id, rownum)
                if first != rownum:
                    result = Rejection(result.record_id, self.field_title("id"), f"duplicate id (first at row {first})")
            yield result

    def field_title(self, key: str) -> str:
        """How a rejection names the field: the column title as the file writes it."""
        if key in self.titles:
            return self.titles[key]
        if key in self.mapping.constants:
            return f"[constants] {key}"
        return key

    def cell(self, key: str, cells: list[Any]) -> Any:
        """The raw cell of field ``key`` (None when unmapped or empty)."""
        return cell_at(cells, self.index.get(key))

    def text(self, key: str, cells: list[Any]) -> str | None:
        """The field's text: its cell, else its constant."""
        found = cell_text(self.cell(key, cells))
        if found is None and key in self.mapping.constants:
            found = str(self.mapping.constants[key])
        return found

    def convert(self, rownum: int, cells: list[Any]) -> SourceRecord | Rejection:
        record_id = f"row {rownum}"
        try:
            if "id" in self.index:
                value = cell_text(self.cell("id", cells))
                if value is None:
                    raise _Bad("id", "missing record id")
                record_id = f"{self.prefix}:{value}"
            else:
                record_id = f"{self.prefix}:{self.path.name}:row {rownum}"
            return self._record(record_id, cells)
        except _Bad as exc:
            return Rejection(record_id, self.field_title(exc.key), exc.reason)

    def _record(self, record_id: str, cells: list[Any]) -> SourceRecord:
        m = self.mapping
        amount = self._amount(cells)
        currency = self.text("currency", cells)
        if currency is None:
            raise _Bad("currency", "missing")
        if not _CURRENCY.fullmatch(currency.upper()):
            raise _Bad("currency", f"not an ISO 4217 currency code: {textfiles.shown(currency)}")
        when, year = self._when(cells)
        funder_name, funder_id = self.text("funder", cells), self.text("funder_id", cells)
        if funder_name is None and funder_id is None:
            raise _Bad("funder", "missing funder")
        flow_type = (self.text("flow_type", cells) or "grant").lower()
        if flow_type not in FLOW_TYPES:
            raise _Bad("flow_type", f"{textfiles.shown(flow_type)} is not one of: {', '.join(FLOW_TYPES)}")
        sector_cell = self.text("sector", cells)
        try:
            sectors = parse_sectors(sector_cell, m.separator) if sector_cell else []
        except ValueError as exc:
            raise _Bad("sector", str(exc)) from exc
        sector_text = self.text("sector_text", cells)
        source_sector = "; ".join(t for t in (sector_cell, sector_text) if t) or None
        return SourceRecord(
            source=NAME,
            record_id=record_id,
            flow_type=flow_type,
            amount=amount,
            currency=currency.upper(),
            year=year,
            date=when.isoformat() if when else None,
            start_date=self._optional_date("start_date", cells),
            end_date=self._optional_date("end_date", cells),
            funder_id=funder_id,
            funder_name=funder_name,
            funder_type=self.text("funder_type", cells),
            recipient_id=self.text("recipient_id", cells),
            recipient_name=self.text("recipient", cells),
            recipient_type=self.text("recipient_type", cells),
            recipient_country=self.text("recipient_country", cells),
            implementer_name=self.text("implementer", cells),
            title=self.text("title", cells),
            description=self.text("description", cells),
            source_sector=source_sector,
            theme_hint=sector_text,
            places=self._places(cells),
            sectors=sectors,
            points=self._points(cells),
        )

    def _amount(self, cells: list[Any]) -> float:
        raw = self.cell("amount", cells)
        if raw is None:
            if "amount" in self.mapping.constants:
                return self.mapping.constants["amount"]  # as written in the mapping: not multiplied
            raise _Bad("amount", "missing")
        separator = self.mapping.decimal_separator
        try:
            number = parse_amount(raw, separator)
        except ValueError as exc:
            comma = separator == "." and isinstance(raw, str) and "," in raw
            hint = ' (set [options] decimal_separator = "," for decimal commas)' if comma else ""
            raise _Bad("amount", f"{exc}{hint}") from exc
        if number is None:  # not for a cell that is there: parse_amount gives None only for None
            raise _Bad("amount", "missing")
        amount = number * self.mapping.amount_multiplier
        if not math.isfinite(amount):
            raise _Bad("amount", f"not a finite number after amount_multiplier: {textfiles.shown(raw)}")
        return amount

    def _date(self, key: str, cells: list[Any]) -> date | None:
        raw = self.cell(key, cells)
        if raw is None:
            return self.mapping.constants.get(key)
        try:
            return parse_date(raw, self.mapping.date_format, excel=self.excel)
        except ValueError as exc:
            hint = "; or set [options] date_format" if self.mapping.date_format is None and isinstance(raw, str) else ""
            raise _Bad(key, f"{exc}{hint}") from exc

    def _when(self, cells: list[Any]) -> tuple[date | None, int]:
        when = self._date("date", cells)
        if when is not None:
            year, key = when.year, "date"
        else:
            raw = self.cell("year", cells)
            key = "year"
            if raw is not None:
                text = cell_text(raw) or ""
                if not re.fullmatch(r"\d{4}", text):
                    raise _Bad("year", f"not a year: {textfiles.shown(raw)}")
                year = int(text)
            elif "year" in self.mapping.constants:
                year = self.mapping.constants["year"]
            else:
                key = "date" if "date" in self.mapping.columns else "year"
                raise _Bad(key, "missing: the row has no date and no year")
        if not 1900 <= year <= 2100:
            raise _Bad(key, f"year {year} is outside 1900-2100")
        return when, year

    def _optional_date(self, key: str, cells: list[Any]) -> str | None:
        try:
            found = self._date(key, cells)
        except _Bad:
            return None  # planned dates are informative; "ongoing" must not cost the row
        return found.isoformat() if found else None

    def _places(self, cells: list[Any]) -> list[Place]:
        sep = self.mapping.separator
        countries = split_cell(self.text("country", cells) or "", sep)
        names = split_cell(self.text("place", cells) or "", sep)
        regions = split_cell(self.text("region", cells) or "", sep)
        if countries and names and len(countries) > 1 and len(names) != len(countries):
            raise _Bad("place", f"{len(names)} places for {len(countries)} countries; give one place per "
                       "country, or one country")
        if not countries:
            if names:
                region = regions[0] if len(regions) == 1 else None
                return [Place(region=region, admin1_name=n) for n in names]
            return [Place(region=r) for r in regions]
        places = []
        for country in countries:
            # Text that is no country ("Africa, regional", "Global") still says where: as a region.
            iso3 = textfiles.country_iso3(country)  # bounded: see textfiles.country_text
            places.append(Place(country=country) if iso3 else Place(region=country))
        if not names:
            return places
        if len(places) == 1:
            return [Place(country=places[0].country, region=places[0].region, admin1_name=n) for n in names]
        return [Place(country=p.country, region=p.region, admin1_name=n) for p, n in zip(places, names, strict=True)]

    def _points(self, cells: list[Any]) -> list[tuple[float, float]]:
        lat_raw, lon_raw = self.cell("latitude", cells), self.cell("longitude", cells)
        if lat_raw is None and lon_raw is None:
            if "latitude" in self.mapping.constants:
                return [(self.mapping.constants["latitude"], self.mapping.constants["longitude"])]
            return []
        if lat_raw is None or lon_raw is None:
            missing = "latitude" if lat_raw is None else "longitude"
            raise _Bad(missing, f"missing; the row has a {'longitude' if lat_raw is None else 'latitude'}")
        point = []
        for key, raw, limit in (("latitude", lat_raw, 90), ("longitude", lon_raw, 180)):
            try:
                number = float(raw) if not isinstance(raw, bool) else math.nan
            except (TypeError, ValueError, OverflowError):  # OverflowError: a huge workbook integer
                number = math.nan
            if not (math.isfinite(number) and -limit <= number <= limit):
                raise _Bad(key, f"not a {key} from -{limit} to {limit}: {textfiles.shown(raw)}")
            point.append(number)
        return [(point[0], point[1])]

