"""Loader for HDX 3W / 4W tables ("who does what where"): CSV or XLSX with an HXL hashtag row.

One ``SourceRecord`` per data row. A 3W row without an amount is a *presence* record: on the map
it counts organisations and activities, never dollars.

Formats
-------
* The table is found by its HXL hashtag row, wherever it sits in the first 25 rows of the file
  (or of a sheet): the first row (no text headers), the second row under text headers (the usual
  HDX layout), or lower, under title lines. A row is the hashtag row when at least two of its
  cells are HXL hashtags and they are more than half of its non-empty cells (libhxl's fuzzy rule;
  untagged columns are allowed and ignored). Rows above it are ignored; rows below it are data.
* CSV: encoding sniffed (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252, else latin-1);
  delimiter ``,`` ``;`` tab or ``|``, the one under which the hashtag row has the most tags;
  read row by row (a line over 1 MiB is a ``LoadError``; a last row cut short is rejected as
  truncated). XLSX: every visible sheet with a hashtag row naming an organisation column (see
  below) is read row by row (openpyxl read-only); other sheets (instructions, P-code lists) are
  skipped, hidden ones always (``LoadError`` when only hidden sheets have hashtags). Formulas,
  merged cells and serial-number dates follow ``textfiles`` ("XLSX"). Old binary ``.xls``
  and JSON/XML files raise ``LoadError``; so does a table without a hashtag row in its first 25
  rows, or without an implementer or funder name/acronym column
  (``#org``, ``#org+name``, ``#org+acronym``, ``#org+impl...``, ``#org+funder...``).
* ``detect`` claims a CSV head with a hashtag row in its first 25 rows (never JSON, XML or binary
  heads: the HDX CKAN metadata JSON mentions hashtags but is not a table) and, for a zip head,
  any workbook (``b"xl/"``), which ``sniff_xlsx`` then confirms from the first 25 rows of its sheets.

Hashtags
--------
Each hashtag cell is lower-cased and the whitespace around its ``+`` signs dropped
(``"#org +Acronym"`` is ``#org+acronym``; ``"# note"`` is no hashtag); an old-style language
suffix (``#adm1/fr``) is dropped. A column is picked by
(tag, required attributes, excluded attributes) from a priority list; when several columns fit
one rule the leftmost wins. Rejections name the column by its normalised hashtag.

Mapping rules
-------------
* ``record_id`` = ``row{n}``, n the row's number in the file or sheet (1-based, header and title
  rows counted, so it is the number a spreadsheet shows); ``{sheet}:row{n}`` when the workbook has
  several sheets. Entirely empty rows are skipped silently.
* Implementer (who does the work): the ``#org+impl`` columns when there are any, else the plain
  ``#org`` columns (not ``+funder``, ``+donor``, ``+prog`` or ``+lead``). Name: ``+name`` (else the
  bare tag); a row whose name cell is empty falls back to the ``+acronym`` cell. ``recipient_name``
  and ``implementer_name`` are both that name, because in a 4W the organisation doing the work is
  the one receiving the money. ``recipient_id`` from ``+code``/``+id``; ``recipient_type`` from
  ``+type`` (``+type+name`` before ``+type+code``). Acronyms are not kept when a name is given.
  ``+prog`` (programming partner) orgs are not mapped: they are not reliably the funder.
* Funder: ``#org+funder`` or ``#org+donor``, with the same name/acronym/code/type rules.
  A row naming neither an implementer nor a funder is rejected (field ``#org``).
* Sector: ``source_sector`` = the ``#sector`` text (``+name`` before the bare tag before ``+code``),
  then the ``#subsector`` text, joined with "; ", as given. ``theme_hint`` = that text, else the
  activity name. A ``SectorShare`` only when a column gives an OECD DAC purpose code that the
  project's DAC table knows: ``#sector+dac``/``#subsector+dac`` (3 or 5 digits) or a 5-digit
  ``+code``; cluster codes such as ``WASH`` or ``PROTECTION_OP`` give no sector row.
* Place: one ``Place`` per row. ``country`` = ``#country+code`` (ISO3 or ISO2) else
  ``#country+name``/``#country``, as given; when the row has none, the country the OCHA P-codes
  start with (``AF01``, ``AF0101`` -> ``AF`` -> ``AFG``; a 2-letter prefix must be an ISO2 code,
  a 3-letter one an ISO3 code). ``admin1_pcode`` = ``#adm1+code`` (or ``+pcode``; a bare ``#adm1``
  cell that looks like a P-code), ``admin1_name`` = ``#adm1+name`` (else the bare ``#adm1``).
  Admin 2 (``#adm2``) is not kept yet: ``Place`` has no admin-2 fields and an admin-2 P-code
  cannot be cut reliably into its admin-1 P-code, so rows are mapped at admin 1. ``#geo+lat`` and
  ``#geo+lon`` (or ``+long``) give the place's point when both are numbers in range (a decimal
  comma is accepted); otherwise they are ignored. A row with none of these has no place.
* Amount: the first ``#value+usd`` column (not ``+required``, ``+needed``, ``+gap``, ``+pct`` or
  ``+percent``: those are not money that moved), else the first other such ``#value`` column with
  the ``#currency`` column (three letters, else rejected, field ``#currency``; no currency column
  or an empty cell leaves the currency empty, and enrichment says why there is no USD amount).
  USD amounts also set ``amount_usd``, so they count in dollars even without a year. Numbers may
  carry currency symbols (``$``, ``€``, ``£`` ...) or ``USD``, spaces and thousands separators
  (``1,234.5``, ``1.234,5``, ``1 234``; ``textfiles.parse_amount`` in its ``"auto"`` mode); an
  empty cell or ``-``, ``n/a``, ``none``, ``null`` means no amount. Anything else
  that is not a finite number is rejected, naming the column (e.g. ``#value+usd``). Negative and
  zero amounts are kept as given.
* ``flow_type``: ``presence`` (amount and currency None) when there is no amount. With an amount:
  from the value column's attributes (``+committed`` -> commitment, ``+disbursed``/``+paid`` ->
  disbursement, ``+spent``/``+expenditure`` -> expenditure, ``+pledged`` -> pledge), else
  ``pledge`` when the ``#status`` cell says planned/pipeline/proposed, else ``commitment``: a 4W
  amount is usually the funding an activity has been given, not a payment whose date we know.
* Dates: ``date`` = ``#date`` (no ``+start``/``+end``/``+year`` attribute), ``start_date`` =
  ``#date+start``, ``end_date`` = ``#date+end``: ISO dates/datetimes, ``yyyy/mm/dd``, day-first
  ``dd/mm/yyyy`` (``.``/``-`` too; month-first only when the day-first reading is impossible),
  Excel date cells and, in XLSX, Excel serial numbers. Unreadable dates are left empty (dates are
  informative in a 3W; they never cost a row).
* ``year``: from ``date``, else ``start_date``, else a 4-digit year in the ``#date+year`` cell or
  in a date cell's text ("Q1 2024"), else the ``year`` argument of ``read``, else the one 4-digit
  year (19xx/20xx) in the file name ("..._january_march_2024.csv" -> 2024), else None (the
  canonical table allows an empty year). A year outside 1900-2100 is ignored.
* ``title`` = ``#activity+name`` (else the bare ``#activity``, not ``+code``/``+id``/``+description``),
  ``description`` = ``#activity+description``. Beneficiary and other columns are not mapped.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import geography, textfiles, themes
from .errors import LoadError, Rejection
from .records import Place, SectorShare, SourceRecord
from .textfiles import NO_AMOUNT, cell_at, cell_text, parse_amount, parse_date

NAME = "hdx_3w"

SCAN_ROWS = 25  # how far down a file or sheet the hashtag row may be
_HEAD_CHARS = 64 * 1024  # text read to sniff the CSV delimiter
_DELIMITERS = (",", ";", "\t", "|")

# libhxl's token: a letter, then letters, digits or underscores. Spaces may surround the "+" of
# an attribute ("#org +acronym"), never follow the "#" ("# comment" is not a hashtag).
_HASHTAG = re.compile(r"#([a-z][a-z0-9_]*)((?:\s*\+\s*[a-z][a-z0-9_]*)*)(?:\s*/[a-z]{2,3})?")
_SPACES = re.compile(r"\s+")


# --------------------------------------------------------------------------- hashtags


@dataclass(frozen=True)
class Hashtag:
    """One parsed hashtag cell: ``#org +Impl+name`` -> tag ``org``, attrs ``{impl, name}``."""

    tag: str
    attrs: frozenset[str]
    text: str  # the normalised spelling ("#org+impl+name"), used to name the column in rejections


def parse_hashtag(cell: Any) -> Hashtag | None:
    """The hashtag of a header cell, or None when the cell is not an HXL hashtag."""
    if not isinstance(cell, str):
        return None
    m = _HASHTAG.fullmatch(cell.replace("\ufeff", "").strip().lower())
    if m is None:
        return None
    attr_text = _SPACES.sub("", m.group(2))
    attrs = frozenset(a for a in attr_text.split("+") if a)
    return Hashtag(m.group(1), attrs, f"#{m.group(1)}{attr_text}")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def is_hashtag_row(cells: Sequence[Any]) -> bool:
    """At least two hashtag cells, and more than half of the non-empty cells are hashtags."""
    filled = [c for c in cells if not _blank(c)]
    tags = sum(1 for c in filled if parse_hashtag(c) is not None)
    return tags >= 2 and tags * 2 > len(filled)


def _tag_count(cells: Sequence[Any]) -> int:
    return sum(1 for c in cells if parse_hashtag(c) is not None) if is_hashtag_row(cells) else 0


# --------------------------------------------------------------------------- detection


def detect(head: bytes) -> bool:
    """Whether ``head`` is a CSV with an HXL hashtag row in its first rows, or may be a workbook.

    For a zip this only says "it may be a workbook"; ``sniff_xlsx`` confirms from its rows.
    """
    if head.startswith(b"PK\x03\x04"):
        return b"xl/" in head
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return False
    text = _decode_head(head)
    if text is None:
        return False
    stripped = text.lstrip(" \t\r\n")
    if not stripped or stripped[0] in "{[<":
        return False  # JSON (e.g. HDX CKAN metadata) or XML: not a table
    return _best_delimiter(text) is not None


def sniff_xlsx(path: Path) -> bool:
    """Whether a workbook has a sheet with an HXL hashtag row in its first 25 rows."""
    return textfiles.xlsx_has_row(path, is_hashtag_row, SCAN_ROWS, reset_dimensions=True)


def _decode_head(head: bytes) -> str | None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    if b"\x00" in head:
        return None  # binary, or UTF-16 without a BOM
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a character cut at the end of the head
            return head[: exc.start].decode("utf-8")
        return head.decode("cp1252", errors="replace")


def _best_delimiter(text: str) -> str | None:
    """The delimiter under which the first rows hold the hashtag row with the most tags."""
    best, best_count = None, 0
    for delimiter in _DELIMITERS:
        # newline="": rows end at \n, \r\n or a bare \r, as in the file (csv would raise on a bare \r).
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        count = 0
        try:
            for _, row in zip(range(SCAN_ROWS), reader, strict=False):
                count = _tag_count(row)
                if count:
                    break
        except csv.Error:
            continue
        if count > best_count:
            best, best_count = delimiter, count
    return best


# --------------------------------------------------------------------------- column layout

_ORG_ROLES = frozenset({"funder", "donor", "prog", "lead"})
_ORG_DETAILS = frozenset({"type", "code", "id", "acronym"})
_NOT_MONEY = frozenset({"required", "needed", "gap", "pct", "percent"})
_FLOW_BY_ATTR = {
    "committed": "commitment",
    "commitment": "commitment",
    "disbursed": "disbursement",
    "disbursement": "disbursement",
    "paid": "disbursement",
    "spent": "expenditure",
    "expenditure": "expenditure",
    "expended": "expenditure",
    "pledged": "pledge",
    "pledge": "pledge",
}

_Rule = tuple[str, frozenset[str], frozenset[str]]


def _rule(tag: str, required: Iterable[str] = (), excluded: Iterable[str] = ()) -> _Rule:
    return tag, frozenset(required), frozenset(excluded)


def _pick(tags: Sequence[Hashtag | None], *rules: _Rule) -> int | None:
    """Index of the leftmost column matching the first rule that any column matches."""
    for tag, required, excluded in rules:
        for i, hashtag in enumerate(tags):
            if hashtag and hashtag.tag == tag and required <= hashtag.attrs and not excluded & hashtag.attrs:
                return i
    return None


@dataclass(frozen=True)
class _Org:
    """Columns of one organisation role (implementer or funder)."""

    name: int | None
    acronym: int | None
    id: int | None
    type: int | None

    @property
    def named(self) -> bool:
        return self.name is not None or self.acronym is not None


def _org_columns(tags: Sequence[Hashtag | None], roles: Sequence[str] | None) -> _Org:
    """Columns of the orgs with one of ``roles`` (in that order), or of plain orgs when None."""
    if roles is None:
        variants: list[tuple[tuple[str, ...], frozenset[str]]] = [((), _ORG_ROLES | {"impl"})]
    else:
        variants = [((role,), frozenset()) for role in roles]

    def pick(required: Iterable[str], excluded: Iterable[str]) -> int | None:
        rules = [_rule("org", (*req, *required), exc | frozenset(excluded)) for req, exc in variants]
        return _pick(tags, *rules)

    return _Org(
        name=_first_of(pick(["name"], _ORG_DETAILS), pick([], _ORG_DETAILS | {"name"})),
        acronym=pick(["acronym"], ["type"]),
        id=_first_of(pick(["code"], ["type"]), pick(["id"], ["type"])),
        type=_first_of(pick(["type", "name"], []), pick(["type"], ["code"]), pick(["type"], [])),
    )


def _first_of(*indices: int | None) -> int | None:
    return next((i for i in indices if i is not None), None)


@dataclass(frozen=True)
class _Layout:
    """Which column holds what, from the hashtag row."""

    tags: tuple[Hashtag | None, ...]
    implementer: _Org
    funder: _Org
    sector: int | None
    subsector: int | None
    dac_codes: tuple[tuple[int, bool], ...]  # (column, 3-digit categories allowed)
    country_code: int | None
    country_name: int | None
    adm1_code: int | None
    adm1_name: int | None
    adm1_bare: int | None
    pcodes: tuple[int, ...]  # P-code columns, admin 1 first, to infer the country
    lat: int | None
    lon: int | None
    value: int | None
    currency: int | None
    status: int | None
    date: int | None
    start: int | None
    end: int | None
    year: int | None
    title: int | None
    description: int | None

    @property
    def has_org(self) -> bool:
        return self.implementer.named or self.funder.named


def _layout(cells: Sequence[Any]) -> _Layout:
    tags = tuple(parse_hashtag(c) for c in cells)
    impl_cols = _org_columns(tags, ["impl"])
    if not impl_cols.named:
        impl_cols = _org_columns(tags, None)  # a plain 3W: #org is who does the work

    def sector_rules(tag: str) -> tuple[_Rule, ...]:
        return (
            _rule(tag, ("name",), ("code", "dac")),
            _rule(tag, (), ("code", "dac", "name", "id")),
            _rule(tag, ("code",), ("dac",)),
        )

    dac: list[tuple[int, bool]] = []
    for tag, attr, short_ok in (
        ("subsector", "dac", True),
        ("sector", "dac", True),
        ("subsector", "code", False),
        ("sector", "code", False),
    ):
        i = _pick(tags, _rule(tag, (attr,)))
        if i is not None and all(i != j for j, _ in dac):
            dac.append((i, short_ok))
    pcodes = [
        _first_of(_pick(tags, _rule(f"adm{level}", ("code",))), _pick(tags, _rule(f"adm{level}", ("pcode",))))
        for level in (1, 2, 3, 4)
    ]
    value = _pick(tags, _rule("value", ("usd",), _NOT_MONEY), _rule("value", (), _NOT_MONEY))
    return _Layout(
        tags=tags,
        implementer=impl_cols,
        funder=_org_columns(tags, ["funder", "donor"]),
        sector=_pick(tags, *sector_rules("sector")),
        subsector=_pick(tags, *sector_rules("subsector")),
        dac_codes=tuple(dac),
        country_code=_pick(tags, _rule("country", ("code",))),
        country_name=_pick(tags, _rule("country", ("name",)), _rule("country", (), ("code", "id"))),
        adm1_code=pcodes[0],
        adm1_name=_pick(tags, _rule("adm1", ("name",), ("code", "pcode"))),
        adm1_bare=_pick(tags, _rule("adm1", (), ("code", "pcode", "name", "id"))),
        pcodes=tuple(i for i in pcodes if i is not None),
        lat=_pick(tags, _rule("geo", ("lat",))),
        lon=_first_of(_pick(tags, _rule("geo", ("lon",))), _pick(tags, _rule("geo", ("long",)))),
        value=value,
        currency=_pick(tags, _rule("currency")),
        status=_pick(tags, _rule("status")),
        date=_pick(tags, _rule("date", (), ("start", "end", "year"))),
        start=_pick(tags, _rule("date", ("start",))),
        end=_pick(tags, _rule("date", ("end",))),
        year=_pick(tags, _rule("date", ("year",))),
        title=_pick(tags, _rule("activity", ("name",)), _rule("activity", (), ("code", "id", "description"))),
        description=_pick(tags, _rule("activity", ("description",))),
    )


# --------------------------------------------------------------------------- reading


def read(path: Path, year: int | None = None) -> Iterator[SourceRecord | Rejection]:
    """Yield one ``SourceRecord`` (or ``Rejection``) per data row of a 3W/4W CSV or XLSX file.

    ``year``: the year of rows that state none (a 3W is a snapshot, often dated only in its
    title); None takes the one 4-digit year in the file name, if any.
    """
    path = Path(path)
    file = str(path)
    head = textfiles.read_head(path)
    if not head.strip():
        raise LoadError(file, "the file is empty")
    textfiles.refuse_old_xls(path, head)
    default_year = year if year is not None else year_from_name(path.name)
    if head.startswith(textfiles.XLSX_MAGIC):
        yield from _read_xlsx(path, default_year)
        return
    text = _decode_head(head)
    if text is not None and text.lstrip(" \t\r\n")[:1] in ("{", "[", "<"):
        raise LoadError(
            file, "this is JSON or XML, not a 3W table: expected a CSV or XLSX file with an HXL hashtag row"
        )
    yield from _read_csv(path, default_year)


def year_from_name(name: str) -> int | None:
    """The one 4-digit year (1900-2099) in a file name, or None when there is none or several."""
    found = {int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d{2})(?!\d)", name)}
    return found.pop() if len(found) == 1 else None


def _no_hashtags(file: str) -> LoadError:
    return LoadError(
        file,
        f"no HXL hashtag row (#org, #sector, #adm1+code ...) in the first {SCAN_ROWS} rows; "
        "HDX 3W/4W tables need one",
    )


def _no_org(file: str, where: str = "") -> LoadError:
    return LoadError(
        file,
        f"the HXL hashtag row{where} has no organisation column (#org, #org+name, #org+acronym, "
        "#org+impl, #org+funder ...)",
    )


def _read_csv(path: Path, default_year: int | None) -> Iterator[SourceRecord | Rejection]:
    file = str(path)
    with textfiles.open_text(path) as fh:
        delimiter = _best_delimiter(fh.read(_HEAD_CHARS))
        if delimiter is None:
            raise _no_hashtags(file)
        fh.seek(0)
        lines = textfiles.BoundedLines(fh, file)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            rows = enumerate(reader, start=1)
            layout = _find_layout(rows)
            if layout is None:
                raise _no_hashtags(file)
            if not layout.has_org:
                raise _no_org(file)
            width = len(layout.tags)
            for rownum, values in rows:
                if cut := textfiles.cut_short(lines, values, width, delimiter):  # a truncated file's last row
                    column, reason = cut
                    tag = layout.tags[column] if column < width else None
                    yield Rejection(f"row{rownum}", tag.text if tag else f"column {column + 1}", reason)
                    continue
                result = _row_to_record(layout, values, f"row{rownum}", False, default_year)
                if result is not None:
                    yield result
        except csv.Error as exc:
            raise LoadError(file, f"CSV cannot be parsed near line {reader.line_num}: {exc}") from None


def _find_layout(rows: Iterator[tuple[int, Sequence[Any]]]) -> _Layout | None:
    """Consume rows up to and including the hashtag row; None if it is not in the first rows."""
    for rownum, values in rows:
        if is_hashtag_row(values):
            return _layout(values)
        if rownum >= SCAN_ROWS:
            return None
    return None


def _read_xlsx(path: Path, default_year: int | None) -> Iterator[SourceRecord | Rejection]:
    file = str(path)
    with textfiles.open_workbook(path) as wb:
        several = len(wb.worksheets) > 1
        found_tags = found_org = False
        hidden: list[str] = []
        for ws in wb.worksheets:
            # Some writers store a wrong sheet size ("A1"); read-only mode would then cut the rows.
            rows = textfiles.sheet_rows(ws, reset_dimensions=True)
            layout = _find_layout(rows)
            if layout is None:
                continue  # no hashtags: an instructions or summary sheet
            if not textfiles.visible(ws):
                hidden.append(ws.title)  # hidden sheets are never read (lookup lists, old copies)
                continue
            found_tags = True
            if not layout.has_org:
                continue  # e.g. a sheet of admin P-codes for a 3W template's drop-downs
            found_org = True
            prefix = f"{ws.title}:" if several else ""
            for rownum, values in rows:
                result = _row_to_record(layout, values, f"{prefix}row{rownum}", True, default_year)
                if result is not None:
                    yield result
        if not found_tags and hidden:
            raise LoadError(
                file,
                f"the only sheets with an HXL hashtag row are hidden ({', '.join(map(repr, hidden))}); "
                "hidden sheets are not read: unhide the 3W sheet to load it",
            )
        if not found_tags:
            raise _no_hashtags(file)
        if not found_org:
            raise _no_org(file, " of every sheet")


# --------------------------------------------------------------------------- one row


def _text(values: Sequence[Any], index: int | None) -> str | None:
    """The cell at ``index`` as text (codes typed as numbers: 14030.0 -> "14030"), or None."""
    if index is None or index >= len(values):
        return None
    value = values[index]
    if value.__class__ is str:  # a CSV cell: what cell_text(cell_at(...)) gives, in one step
        return value.strip() or None
    return cell_text(cell_at(values, index))


def _coordinate(value: Any, limit: float) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().replace(",", ".") if value.count(",") == 1 and "." not in value else value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a workbook integer too large for a float
        return None
    return number if math.isfinite(number) and abs(number) <= limit else None


_YEAR_IN_TEXT = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_PLANNED = re.compile(r"\b(planned|pipeline|proposed)\b")


def _to_date(value: Any, excel: bool) -> date | None:
    """A date from a cell in 1900-2100; None when empty or unreadable."""
    if value.__class__ is str:
        return _text_to_date(value, excel)
    return _cell_to_date(value, excel)


@lru_cache(maxsize=8192)
def _text_to_date(text: str, excel: bool) -> date | None:
    # Cached: a 3W repeats a few hundred date texts; the bounded cache keeps memory flat.
    return _cell_to_date(text, excel)


def _cell_to_date(value: Any, excel: bool) -> date | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 1900 <= value <= 2100:
        return None  # a year, not an Excel serial number
    try:
        # Month-first only when the day-first reading is impossible (US): 01/15/2024.
        found = parse_date(value, excel=excel, month_first_fallback=True)
    except ValueError:
        return None
    return found if found is not None and 1900 <= found.year <= 2100 else None


def _year_in(value: Any) -> int | None:
    """A 4-digit year stated in a cell ("2024", 2024, "Q1 2024"), or None."""
    if isinstance(value, (datetime, date)):
        return value.year if 1900 <= value.year <= 2100 else None
    if isinstance(value, bool) or value is None or isinstance(value, textfiles.FormulaWithoutValue):
        return None  # (a formula's text may hold a year that is not the cell's value)
    if isinstance(value, int):  # compared as an int: float() of a huge workbook integer overflows
        return value if 1900 <= value <= 2100 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and 1900 <= value <= 2100 else None
    found = {int(y) for y in _YEAR_IN_TEXT.findall(str(value))}
    return found.pop() if len(found) == 1 else None


_PCODE_PREFIX = re.compile(r"([A-Za-z]{2,3})\d")
_PCODE = re.compile(r"[A-Z]{2,3}\d+")


@lru_cache(maxsize=1024)
def pcode_country(pcode: str) -> str | None:
    """ISO3 of the country an OCHA P-code starts with ("AF0101" -> "AFG"), or None."""
    m = _PCODE_PREFIX.match(pcode.strip())
    if m is None:
        return None
    letters = m[1].upper()
    iso3 = geography.to_iso3(letters)
    if iso3 is None or (len(letters) == 3 and iso3 != letters):
        return None
    return iso3


def _place(layout: _Layout, values: Sequence[Any]) -> Place | None:
    # Bounded (textfiles.country_text): enrichment matches the country text against country names.
    country = textfiles.country_text(_text(values, layout.country_code) or _text(values, layout.country_name))
    adm1_code = _text(values, layout.adm1_code)
    adm1_name = _text(values, layout.adm1_name)
    bare = _text(values, layout.adm1_bare)
    if bare is not None:
        if adm1_code is None and _PCODE.fullmatch(bare.upper()):
            adm1_code = bare  # a bare #adm1 holding P-codes
        elif adm1_name is None:
            adm1_name = bare
    if country is None:
        # No country column (the usual 3W): the P-codes say which country.
        for index in layout.pcodes:
            code = _text(values, index)
            country = pcode_country(code) if code else None
            if country:
                break
    lat = _coordinate(cell_at(values, layout.lat), 90)
    lon = _coordinate(cell_at(values, layout.lon), 180)
    if lat is None or lon is None:
        lat = lon = None
    if country is None and adm1_code is None and adm1_name is None and lat is None:
        return None
    return Place(country=country, admin1_pcode=adm1_code, admin1_name=adm1_name, lat=lat, lon=lon)


def _org(values: Sequence[Any], cols: _Org) -> tuple[str | None, str | None, str | None]:
    """(id, name, type) of one organisation role in a row."""
    name = _text(values, cols.name) or _text(values, cols.acronym)
    return _text(values, cols.id), name, _text(values, cols.type)


def _sectors(layout: _Layout, values: Sequence[Any], name: str | None) -> list[SectorShare]:
    for index, short_ok in layout.dac_codes:
        code = _text(values, index)
        if code is None or not code.isdigit() or len(code) not in ((3, 5) if short_ok else (5,)):
            continue
        if themes.dac_category(code)[0] is not None:
            return [SectorShare(code=code, name=name)]
    return []


@lru_cache(maxsize=256)
def _flow_of_attrs(attrs: frozenset[str]) -> str:
    """The flow type a value hashtag's attributes name (the first in sorted order), else "".
    Cached: every row of a file asks it of the same hashtag."""
    return next((_FLOW_BY_ATTR[a] for a in sorted(attrs) if a in _FLOW_BY_ATTR), "")


def _row_to_record(
    layout: _Layout, values: Sequence[Any], record_id: str, excel: bool, default_year: int | None
) -> SourceRecord | Rejection | None:
    """The record of one data row; None for an entirely empty row."""
    if all(_blank(v) for v in values):
        return None
    impl_id, impl_name, impl_type = _org(values, layout.implementer)
    funder_id, funder_name, funder_type = _org(values, layout.funder)
    if impl_name is None and funder_name is None:
        return Rejection(record_id, "#org", "no organisation named (implementing or funding)")

    value_tag = layout.tags[layout.value] if layout.value is not None else None
    try:
        amount = parse_amount(cell_at(values, layout.value), "auto", no_amount=NO_AMOUNT)
    except ValueError as exc:
        return Rejection(record_id, value_tag.text if value_tag else "#value", str(exc))

    currency = None
    flow_type = "presence"
    if amount is not None and value_tag is not None:
        if "usd" in value_tag.attrs:
            currency = "USD"
        else:
            currency = _text(values, layout.currency)
            if currency is not None:
                currency = currency.upper()
                if not _CURRENCY_CODE.fullmatch(currency):
                    tag = layout.tags[layout.currency]
                    reason = f"not an ISO 4217 code: {textfiles.shown(currency)}"
                    return Rejection(record_id, tag.text if tag else "#currency", reason)
        flow_type = _flow_of_attrs(value_tag.attrs)
        if not flow_type:
            status = (_text(values, layout.status) or "").lower()
            flow_type = "pledge" if _PLANNED.search(status) else "commitment"

    when = _to_date(cell_at(values, layout.date), excel)
    start = _to_date(cell_at(values, layout.start), excel)
    end = _to_date(cell_at(values, layout.end), excel)
    # The first year found, in this order; the cells are only read as far as needed.
    year = when.year if when else start.year if start else None
    if year is None:
        for index in (layout.year, layout.date, layout.start):
            year = _year_in(cell_at(values, index))
            if year is not None:
                break
        else:
            year = default_year

    sector_parts = [t for t in (_text(values, layout.sector), _text(values, layout.subsector)) if t]
    sector_text = "; ".join(dict.fromkeys(sector_parts)) or None
    title = _text(values, layout.title)
    place = _place(layout, values)
    return SourceRecord(
        source=NAME,
        record_id=record_id,
        flow_type=flow_type,
        amount=amount,
        currency=currency,
        year=year,
        date=when.isoformat() if when else None,
        start_date=start.isoformat() if start else None,
        end_date=end.isoformat() if end else None,
        funder_id=funder_id,
        funder_name=funder_name,
        funder_type=funder_type,
        recipient_id=impl_id,
        recipient_name=impl_name,
        recipient_type=impl_type,
        implementer_name=impl_name,
        title=title,
        description=_text(values, layout.description),
        source_sector=sector_text,
        theme_hint=sector_text or title,
        amount_usd=amount if currency == "USD" else None,
        places=[place] if place else [],
        sectors=_sectors(layout, values, sector_parts[-1] if sector_parts else None),
    )
