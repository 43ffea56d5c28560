"""Loader for OECD Creditor Reporting System (CRS) activity data: bulk files, extracts, snake_case exports.

Each CRS row gives up to two records: a ``commitment`` and a ``disbursement``.

Formats
-------
* Text tables whose header row holds CRS column names: the OECD bulk download (``|``-separated,
  often UTF-16 LE with a byte-order mark), ``;``- and ``,``-separated extracts, tab-separated
  files, and the snake_case exports analysis packages write (``donor_name``, ``usd_commitment``).
  Column names are matched case-, space- and underscore-insensitively (``USD_Commitment``,
  ``usd_commitment`` and ``USD Commitment`` are one column), so bulk files that mix CamelCase and
  lower-case names (``DonorName`` ... ``usd_commitment``) are read too.
* Encoding: UTF-8 with or without BOM, UTF-16 with BOM (or without, recognised by its NUL bytes),
  else cp1252, else latin-1. The delimiter is the one of ``|`` ``;`` tab ``,`` that splits the
  header into the most CRS names. The header may follow up to 20 note lines (read for a units
  hint, see below). A first column with an empty header (a pandas index) and unknown columns (the
  World Bank ``Recipientstat ...`` columns of some extracts) are ignored.
* Quoting: standard CSV quoting, except in ``|``- and tab-separated files whose header is not
  quoted (the OECD bulk files): there quotes are text, because descriptions contain stray ``"``.
* Streamed row by row (``csv`` over a decoded text stream): memory does not grow with the file,
  except for one integer per row (the row digest, to number identical rows; ~20 MB per 200,000 rows).
* Errors for the whole file (``LoadError``): no CRS header in the first lines, no amount column
  (``USD_Commitment``/``USD_Disbursement`` or their deflated forms), a CSV that cannot be parsed.

Mapping rules
-------------
* Amounts: ``USD_Commitment`` -> a ``commitment`` record (``record_id`` ``{key}#c``),
  ``USD_Disbursement`` -> a ``disbursement`` record (``{key}#d``), each only when the cell is
  non-empty and non-zero (an empty or zero cell is no money, not an error; a row with neither gives
  nothing). Current-price columns are preferred; only when a file has no current-price column for
  a flow is the deflated one used (``USD_Commitment_Defl``, ``usd_commitment_deflated``,
  ``usd_commitment_constant``). Such records are in **constant US dollars** and say so: their title
  ends with `` [constant USD]`` (the only field a user always sees; the base year is not in the
  files). The choice is per file and per flow, never per cell, so one file never mixes price bases
  for a flow. A cell that is not a finite number -> ``Rejection`` (field = the column's name) for
  that flow only. ``1,234.5`` is read with a thousands comma; ``0,5`` and ``1.234,5`` with a
  decimal comma only in ``;``-separated files (European spreadsheets); spaces and currency marks
  are dropped (``textfiles.parse_amount``). Negative amounts (reflows) are kept. A value that is
  no longer finite once multiplied by the units (``1e308`` millions) is rejected too.
* Units: ``amount = value * units``; ``currency`` ``USD`` and ``amount_usd = amount`` (the source
  states US dollars, so no exchange rate is applied). ``units`` is ``read``'s parameter (1e6 for
  USD millions, 1e3 for thousands, 1 for dollars); ``None`` (default) detects it, first match wins:
  1. a unit in the amount column's name: ``USD_Commitment (thousands)``, ``usd_commitment_000``,
     ``usd_commitment_kusd`` -> 1e3; ``USD_Commitment (USD millions)``, ``usd_commitment_mn``,
     ``_musd`` -> 1e6; ``usd_commitment_usd`` -> 1;
  2. a note line above the header that names one unit: "thousand(s)" / "'000" -> 1e3,
     "million(s)" / "mn" / "mln" -> 1e6;
  3. the naming style: CRS CamelCase names (``DonorName``, ``RecipientName``: the OECD bulk files
     and extracts from OECD.Stat) -> ``CRS_UNITS`` = 1e6, since the OECD publishes CRS amounts in
     USD millions; snake_case exports (``donor_name``, ``recipient_name``: files written by
     analysis packages such as ``oda_data`` / ``pydeflate`` pipelines) -> ``SNAKE_CASE_UNITS`` = 1,
     plain US dollars. Check a snake_case file's magnitudes: if it still holds the OECD's millions,
     pass ``units=1e6``.
* ``year``: the ``Year`` column, which must be a whole number in 1900-2100, else the row is
  rejected (field ``Year``). A file without a ``Year`` column (some extracts drop it) takes the
  year of ``CommitmentDate``; a row with no commitment date then has no year (kept, year empty),
  one with an unreadable date is rejected (field ``CommitmentDate``).
* Dates: CRS gives a year, not a transaction date: ``date`` is empty, except a commitment's
  ``date`` is ``CommitmentDate`` when it is an ISO date in the record's year. ``start_date`` /
  ``end_date`` = ``ExpectedStartDate`` / ``CompletionDate`` (ISO dates, a time part allowed;
  anything else is left empty).
* Row key: ``{CRSid}-{year}-{digest}`` when the row has a ``CRSid`` (so the id shows the CRS
  activity; CRSid alone repeats across years and within a year), else ``crs-{digest}``. ``digest``
  is 16 hex digits of SHA-1 over the row's named cells (column name and value, sorted; the index
  column left out), so the same row in two files has the same id and is stored once, whatever the
  column order. Rows identical in every cell get ``~2``, ``~3`` ... in file order.
* Funder: ``funder_name`` = ``DonorName``; ``funder_id`` = ``XM-DAC-{DonorCode}`` (the
  org-id.guide prefix for DAC donor codes). The agency is not kept.
* Recipient: ``recipient_name`` = ``ChannelReportedName``, else ``ChannelName`` (the channel of
  delivery is who receives the money).
* Places (one per record): ``RecipientName`` (else ``RecipientCode``) is a **region** when the
  code is a DAC region code (``geography.DAC_REGIONS``) or the name says ``regional``,
  ``unspecified``, ``unallocated``, ``multi-country``, or starts with ``Developing countries`` /
  ``Bilateral`` -> ``Place(region=name)``. Otherwise ``geography.to_iso3(RecipientName)``
  (RecipientCode is a DAC code, never ISO, so it is not used for countries) -> ``Place(country=ISO3)``.
  A name that is no current country (``Serbia and Montenegro``, ``Netherlands Antilles``,
  ``Yugoslavia``) is kept as ``Place(region=name)`` so the place is not lost.
* Sector: ``PurposeCode`` (5-digit DAC) -> ``SectorShare(code, PurposeName)``. Without a
  PurposeCode column, a ``PurposeName`` that is exactly a purpose name of the shipped DAC tables
  (``data/wash_subthemes.csv``; its code must lie in ``SectorCode`` when given) gives its code;
  else the 3-digit ``SectorCode`` with ``SectorName``. ``source_sector`` = ``"{PurposeCode}
  {PurposeName}"`` (else ``"{SectorCode} {SectorName}"``), as the source writes them.
* ``title`` = ``ProjectTitle``, else ``ShortDescription``; ``description`` = ``LongDescription``,
  else ``ShortDescription`` when it is not already the title.
* Rows with more cells than the header are rejected (field ``row``); shorter rows are padded
  with empty cells (trailing empty cells are often left out); blank lines are skipped. The last
  row of a file cut short (no line break after it and fewer cells than the header, or inside a
  quoted cell) is rejected as truncated instead, naming the column where it stops. A line over
  4 MiB is a ``LoadError``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from . import geography, themes
from .errors import LoadError, Rejection
from .records import Place, SectorShare, SourceRecord
from .textfiles import BoundedLines, country_iso3, cut_short, guess_utf16, open_text, parse_amount

NAME = "oecd_crs"

CRS_UNITS = 1_000_000.0  # OECD CRS files state amounts in USD millions
SNAKE_CASE_UNITS = 1.0  # snake_case exports: plain US dollars unless told otherwise
CONSTANT_PRICES_TAG = "[constant USD]"

_HEADER_SCAN_LINES = 21  # the header row may follow up to 20 note lines
_DELIMITERS = ("|", ";", "\t", ",")
_MAX_NAME_CHARS, _MAX_NAME_WORDS = 64, 5  # a header cell longer than this is text, not a column name
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024  # long descriptions are longer than csv's 128 KiB default
# The longest line read: csv holds a line and its cells in memory, so a file without line breaks
# (a 50 MB line of "a,b,c,...") would take gigabytes; rows with long descriptions are far shorter.
_MAX_LINE_CHARS = 4 * 1024 * 1024

# Canonical field -> normalised column names (lower case, letters and digits only).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "year": ("year",),
    "donor_code": ("donorcode",),
    "donor_name": ("donorname",),
    "crs_id": ("crsid",),
    "recipient_code": ("recipientcode",),
    "recipient_name": ("recipientname",),
    "purpose_code": ("purposecode",),
    "purpose_name": ("purposename",),
    "sector_code": ("sectorcode",),
    "sector_name": ("sectorname",),
    "channel_name": ("channelname",),
    "channel_reported_name": ("channelreportedname",),
    "project_title": ("projecttitle",),
    "short_description": ("shortdescription",),
    "long_description": ("longdescription",),
    "expected_start_date": ("expectedstartdate",),
    "completion_date": ("completiondate",),
    "commitment_date": ("commitmentdate",),
}
_BY_NORMALISED = {name: key for key, names in _COLUMNS.items() for name in names}
# Columns that mark a CRS table (and whose spelling tells CamelCase from snake_case).
_IDENTIFYING = {"donor_code", "donor_name", "crs_id", "recipient_code", "recipient_name", "purpose_code"}
_FLOWS = {"usdcommitment": "commitment", "usddisbursement": "disbursement"}
_FLOW_SUFFIX = {"commitment": "c", "disbursement": "d"}

_BASIS = r"defl(?:ated)?|constant|current"
_AMOUNT_TAIL = re.compile(rf"({_BASIS})?(.*?)({_BASIS})?(?:\d{{4}})?")
_UNIT_WORDS = (
    (re.compile(r"(?:usd)?(?:thousands?|000|k)(?:usd)?"), 1_000.0),
    (re.compile(r"(?:usd)?(?:millions?|mn|mln|mio|m)(?:usd)?"), 1_000_000.0),
    (re.compile(r"usd|dollars?|units?"), 1.0),
)
_NOTE_THOUSANDS = re.compile(r"\bthousands?\b|'000\b|\b000s\b", re.IGNORECASE)
_NOTE_MILLIONS = re.compile(r"\bmillions?\b|\bmn\b|\bmln\b", re.IGNORECASE)
_INDEX_COLUMN = re.compile(r"(?:unnamed\d*)?")  # "" or pandas' "Unnamed: 0"

_REGIONAL = re.compile(
    r"\bregional\b|\bunspecified\b|\bunallocated\b|\bmulti-?country\b|^\s*(?:developing countries|bilateral)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\s*(\d{4})(?:\.0*)?\s*")
_YEAR_IN_TEXT = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_ISO_DATE = re.compile(r"\s*(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]*)?\s*")


def _normalise(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


# --------------------------------------------------------------------------- header


@dataclass
class _AmountColumn:
    index: int
    name: str
    flow: str
    constant: bool
    units: float | None  # from the column's name; None when it names no unit


@dataclass
class _Header:
    names: list[str]
    fields: dict[str, int]  # canonical field -> column index
    amounts: list[_AmountColumn]
    snake_case: bool
    ignored: set[int] = field(default_factory=set)  # index columns left out of the row digest
    digest_names: list[str] = field(default_factory=list)  # normalised names, for the row digest

    def __post_init__(self) -> None:
        self.digest_names = [_normalise(name) for name in self.names]


def _amount_column(index: int, raw: str) -> _AmountColumn | None:
    norm = _normalise(raw)
    for prefix, flow in _FLOWS.items():
        if not norm.startswith(prefix):
            continue
        m = _AMOUNT_TAIL.fullmatch(norm[len(prefix) :])
        if m is None:
            return None
        basis = {m[1], m[3]} - {None}
        unit_text = m[2]
        units = None
        if unit_text:
            units = next((u for pattern, u in _UNIT_WORDS if pattern.fullmatch(unit_text)), None)
            if units is None:
                return None  # another column that starts alike (e.g. usd_commitment_national)
        constant = any(b != "current" for b in basis)
        return _AmountColumn(index, raw.strip(), flow, constant, units)
    return None


def _parse_header(cells: list[str]) -> _Header | None:
    """The CRS columns of a header row; None when it is not a CRS header."""
    # Column names are short: a line of prose that mentions CRS names (a README) is no header.
    if any(len(c.strip()) > _MAX_NAME_CHARS or len(c.split()) > _MAX_NAME_WORDS for c in cells):
        return None
    fields: dict[str, int] = {}
    raw_identifying: list[str] = []
    amounts: list[_AmountColumn] = []
    ignored: set[int] = set()
    for i, raw in enumerate(cells):
        norm = _normalise(raw)
        if i == 0 and _INDEX_COLUMN.fullmatch(norm):
            ignored.add(i)
            continue
        key = _BY_NORMALISED.get(norm)
        if key is not None:
            fields.setdefault(key, i)
            if key in _IDENTIFYING:
                raw_identifying.append(raw.strip())
            continue
        amount = _amount_column(i, raw)
        if amount is not None:
            amounts.append(amount)
    identifying = _IDENTIFYING & fields.keys()
    if not identifying or (not amounts and len(identifying) < 3):
        return None
    # snake_case when every identifying name is lower case with "_" between its words.
    snake = all(re.fullmatch(r"[a-z0-9]+(?:_[a-z0-9]+)+", name) for name in raw_identifying)
    return _Header([c.strip() for c in cells], fields, amounts, snake, ignored)


def _split(line: str, delimiter: str, quoting: int = csv.QUOTE_MINIMAL) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, quoting=quoting), [])
    except csv.Error:
        return []


def _find_header(line: str) -> tuple[str, _Header] | None:
    """(delimiter, header) for the delimiter that finds the most CRS columns in ``line``."""
    best: tuple[int, str, _Header] | None = None
    for delimiter in _DELIMITERS:
        if delimiter not in line:
            continue
        header = _parse_header(_split(line.rstrip("\r\n"), delimiter))
        if header is None:
            continue
        score = len(header.fields) + len(header.amounts)
        if best is None or score > best[0]:
            best = (score, delimiter, header)
    return (best[1], best[2]) if best else None


# --------------------------------------------------------------------------- detection


def _decode_head(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return head[3:].decode("utf-8", errors="replace")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    guess = guess_utf16(head)
    if guess:
        return head[: len(head) // 2 * 2].decode(guess, errors="replace")
    return head.decode("utf-8", errors="replace")


def detect(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) is a text table with a CRS header row."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        return False
    text = _decode_head(head)
    if text.lstrip().startswith(("<", "{", "[")):
        return False
    lines = text.splitlines()[:_HEADER_SCAN_LINES]
    return any(_find_header(line) is not None for line in lines)


# --------------------------------------------------------------------------- reading


def _units_from_notes(notes: list[str]) -> float | None:
    text = " ".join(notes)
    thousands, millions = bool(_NOTE_THOUSANDS.search(text)), bool(_NOTE_MILLIONS.search(text))
    if thousands != millions:  # one unit named; both or neither says nothing
        return 1_000.0 if thousands else 1_000_000.0
    return None


@dataclass
class _Plan:
    """How one file's rows become records."""

    header: _Header
    delimiter: str
    amounts: dict[str, _AmountColumn]  # flow -> the column read for it
    units: dict[str, float]  # flow -> multiplier to US dollars
    quotes_are_text: bool  # OECD bulk style: | or tab separated, header not quoted


def _plan(
    file: str, header: _Header, delimiter: str, header_line: str, notes: list[str], units: float | None
) -> _Plan:
    chosen: dict[str, _AmountColumn] = {}
    for flow in ("commitment", "disbursement"):
        columns = [a for a in header.amounts if a.flow == flow]
        # Current prices first; deflated (constant-price) columns only when there is no other.
        current = [a for a in columns if not a.constant]
        pick = (current or columns)[:1]
        if pick:
            chosen[flow] = pick[0]
    if not chosen:
        raise LoadError(
            file,
            "no amount column: a CRS file needs USD_Commitment or USD_Disbursement "
            "(or USD_Commitment_Defl / USD_Disbursement_Defl)",
        )
    note_units = _units_from_notes(notes)
    default = SNAKE_CASE_UNITS if header.snake_case else CRS_UNITS
    multipliers = {}
    for flow, column in chosen.items():
        if units is not None:
            multipliers[flow] = units
        elif column.units is not None:
            multipliers[flow] = column.units
        elif note_units is not None:
            multipliers[flow] = note_units
        else:
            multipliers[flow] = default
    # The bulk files do not quote, and their descriptions hold stray '"': there quotes are text.
    quotes_are_text = delimiter in ("|", "\t") and '"' not in header_line
    return _Plan(header, delimiter, chosen, multipliers, quotes_are_text)


def read(path: Path, units: float | None = None) -> Iterator[SourceRecord | Rejection]:
    """Yield a commitment and/or a disbursement record per CRS row, or a Rejection per unusable value.

    ``units``: multiplier from the file's amounts to US dollars (1e6 for USD millions); None
    detects it from the column names, a note above the header, or the naming style (see above).
    """
    path = Path(path)
    file = str(path)
    if units is not None and not (isinstance(units, (int, float)) and math.isfinite(units) and units > 0):
        raise ValueError(f"units must be a positive number (1e6 for USD millions), not {units!r}")
    try:
        stream = open_text(path, utf16_without_bom=True)
    except OSError as exc:
        raise LoadError(file, f"cannot open the file: {exc.strerror or exc}") from None
    with stream:
        notes: list[str] = []
        found = None
        line_number = 0
        line = ""
        try:
            for line_number, line in enumerate(BoundedLines(stream, file, _MAX_LINE_CHARS), start=1):
                found = _find_header(line)
                if found is not None or line_number >= _HEADER_SCAN_LINES:
                    break
                if line.strip():
                    notes.append(line)
        except UnicodeDecodeError as exc:
            raise LoadError(file, f"bad text encoding: {exc.reason}") from None
        if found is None:
            if not notes:  # no line, or only blank ones
                raise LoadError(file, "the file is empty")
            raise LoadError(
                file,
                "no CRS header row in the first lines (expected CRS column names such as DonorName, "
                "RecipientName, PurposeCode, USD_Commitment, or donor_name, usd_commitment)",
            )
        delimiter, header = found
        plan = _plan(file, header, delimiter, line, notes, units)
        yield from _rows(file, stream, plan, line_number)


def _rows(file: str, stream: io.TextIOBase, plan: _Plan, header_line: int) -> Iterator[SourceRecord | Rejection]:
    header = plan.header
    quoting = csv.QUOTE_NONE if plan.quotes_are_text else csv.QUOTE_MINIMAL
    if csv.field_size_limit() < _FIELD_SIZE_LIMIT:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)
    lines = BoundedLines(stream, file, _MAX_LINE_CHARS, first=header_line + 1)
    reader = csv.reader(lines, delimiter=plan.delimiter, quoting=quoting)
    # Occurrences per row digest (an int, the smallest thing to keep per row) to number identical rows.
    seen: dict[int, int] = {}
    width = len(header.names)
    try:
        for cells in reader:
            line = header_line + reader.line_num
            if not any(c.strip() for c in cells):
                continue  # blank line
            key, digest = _row_key(header, cells)
            count = seen.get(digest, 0) + 1
            seen[digest] = count
            if count > 1:
                key = f"{key}~{count}"
            if len(cells) > width:
                yield Rejection(key, "row", f"line {line}: {len(cells)} cells, the header has {width}")
                continue
            # A truncated file's last row, not one whose trailing empty cells were left out.
            if cut := cut_short(lines, cells, width, plan.delimiter, quoting):
                column, reason = cut
                yield Rejection(key, header.names[column] or "row", f"line {line}: {reason}")
                continue
            cells = cells + [""] * (width - len(cells))
            yield from _row_records(plan, cells, key, line)
    except csv.Error as exc:
        raise LoadError(file, f"CSV cannot be parsed near line {header_line + reader.line_num}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise LoadError(file, f"bad text encoding: {exc.reason}") from None


# --------------------------------------------------------------------------- one row


def _cell(header: _Header, cells: list[str], key: str) -> str | None:
    index = header.fields.get(key)
    if index is None or index >= len(cells):
        return None
    text = " ".join(cells[index].split())
    return text or None


def _row_key(header: _Header, cells: list[str]) -> tuple[str, int]:
    """(row key, its digest as an int): see "Row key" in the module docstring."""
    names = header.digest_names
    named = sorted(
        (names[i] if i < len(names) else f"#{i}", value.strip())
        for i, value in enumerate(cells)
        if i not in header.ignored
    )
    # Not a security use: a stable fingerprint of the row's content.
    digest = hashlib.sha1("\x1f".join(f"{n}\x1e{v}" for n, v in named).encode("utf-8")).hexdigest()[:16]
    crs_id = _cell(header, cells, "crs_id")
    if crs_id:
        year = _cell(header, cells, "year") or _year_in(_cell(header, cells, "commitment_date")) or "na"
        return f"{crs_id}-{year}-{digest}", int(digest, 16)
    return f"crs-{digest}", int(digest, 16)


def _year_in(text: str | None) -> str | None:
    m = _YEAR_IN_TEXT.search(text) if text else None
    return m[1] if m else None


def _iso_date(text: str | None) -> str | None:
    m = _ISO_DATE.fullmatch(text) if text else None
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return None


def _year(header: _Header, cells: list[str]) -> tuple[int | None, tuple[str, str] | None]:
    """(year, problem): problem is (field, reason) for an unusable year."""
    if "year" in header.fields:
        text = _cell(header, cells, "year")
        if text is None:
            return None, (header.names[header.fields["year"]], "missing")
        m = _YEAR.fullmatch(text)
        if not m or not 1900 <= int(m[1]) <= 2100:
            return None, (header.names[header.fields["year"]], f"not a year in 1900-2100: {text!r}")
        return int(m[1]), None
    text = _cell(header, cells, "commitment_date")
    if text is None:
        return None, None  # no Year column and no commitment date: the year is unknown
    found = _year_in(text)
    if found is None or not 1900 <= int(found) <= 2100:
        return None, (header.names[header.fields["commitment_date"]], f"no year in 1900-2100 in {text!r}")
    return int(found), None


def _code(text: str | None) -> str | None:
    if text is None:
        return None
    text = text[:-2] if text.endswith(".0") else text  # 14030.0 from a float column
    return text or None


@cache
def _purpose_codes_by_name() -> dict[str, str]:
    """DAC purpose name (case-folded) -> 5-digit code, from the shipped DAC tables."""
    path = themes.DATA_DIR / "wash_subthemes.csv"
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return {" ".join(row["name"].split()).casefold(): row["code"].strip() for row in csv.DictReader(fh)}


def _sector(header: _Header, cells: list[str]) -> tuple[list[SectorShare], str | None]:
    purpose_code = _code(_cell(header, cells, "purpose_code"))
    purpose_name = _cell(header, cells, "purpose_name")
    sector_code = _code(_cell(header, cells, "sector_code"))
    sector_name = _cell(header, cells, "sector_name")
    if purpose_code or purpose_name:
        source_sector = " ".join(p for p in (purpose_code, purpose_name) if p)
    else:
        source_sector = " ".join(p for p in (sector_code, sector_name) if p) or None
    code = purpose_code if purpose_code and purpose_code.isdigit() else None
    if code is None and purpose_name and "purpose_code" not in header.fields:
        mapped = _purpose_codes_by_name().get(purpose_name.casefold())
        if mapped and (not sector_code or mapped.startswith(sector_code)):
            code = mapped
    if code is not None:
        return [SectorShare(code=code, name=purpose_name)], source_sector
    if sector_code and sector_code.isdigit():
        return [SectorShare(code=sector_code, name=sector_name)], source_sector
    return [], source_sector


def _places(header: _Header, cells: list[str]) -> list[Place]:
    name = _cell(header, cells, "recipient_name")
    code = _code(_cell(header, cells, "recipient_code"))
    if (code and code in geography.DAC_REGIONS) or (name and _REGIONAL.search(name)):
        return [Place(region=name or geography.region_name(code or ""))]
    if name:
        iso3 = country_iso3(name)  # bounded: a 20,000-character name took 50 s in geography.to_iso3
        # A former or unknown entity keeps its name as the place rather than being dropped.
        return [Place(country=iso3)] if iso3 else [Place(region=name)]
    return []


def _row_records(plan: _Plan, cells: list[str], key: str, line: int) -> Iterator[SourceRecord | Rejection]:
    header = plan.header
    year, problem = _year(header, cells)
    if problem is not None:
        field_name, reason = problem
        yield Rejection(key, field_name, f"line {line}: {reason}")
        return
    values: dict[str, float] = {}
    # A decimal comma only in ;-separated files (European spreadsheets): elsewhere 0,5 is no number.
    decimal_separator = "auto" if plan.delimiter == ";" else "."
    for flow, column in plan.amounts.items():
        record_id = f"{key}#{_FLOW_SUFFIX[flow]}"
        try:
            value = parse_amount(" ".join(cells[column.index].split()) or None, decimal_separator)
        except ValueError as exc:
            yield Rejection(record_id, column.name, f"line {line}: {exc}")
            continue
        if value:  # None (empty) and 0 are no money
            # In decimal, so 0.00631298 (millions) becomes 6312.98, not 6312.9800000000005.
            amount = float(Decimal(repr(value)) * Decimal(repr(plan.units[flow])))
            if not math.isfinite(amount):  # 1e308 millions is infinity, which failed the whole load
                reason = f"line {line}: {value!r} times {plan.units[flow]:g} is too large to be an amount"
                yield Rejection(record_id, column.name, reason)
                continue
            values[flow] = amount
    if not values:
        return

    donor_code = _code(_cell(header, cells, "donor_code"))
    short = _cell(header, cells, "short_description")
    title = _cell(header, cells, "project_title") or short
    description = _cell(header, cells, "long_description") or (short if short != title else None)
    sectors, source_sector = _sector(header, cells)
    commitment_date = _iso_date(_cell(header, cells, "commitment_date"))
    common = {
        "source": NAME,
        "currency": "USD",
        "year": year,
        "start_date": _iso_date(_cell(header, cells, "expected_start_date")),
        "end_date": _iso_date(_cell(header, cells, "completion_date")),
        "funder_id": f"XM-DAC-{donor_code}" if donor_code else None,
        "funder_name": _cell(header, cells, "donor_name"),
        "recipient_name": _cell(header, cells, "channel_reported_name") or _cell(header, cells, "channel_name"),
        "description": description,
        "source_sector": source_sector,
    }
    places = _places(header, cells)
    for flow, amount in values.items():
        tag = CONSTANT_PRICES_TAG if plan.amounts[flow].constant else None
        on_date = None
        if flow == "commitment" and commitment_date and year is not None and commitment_date[:4] == str(year):
            on_date = commitment_date
        yield SourceRecord(
            record_id=f"{key}#{_FLOW_SUFFIX[flow]}",
            flow_type=flow,
            amount=amount,
            amount_usd=amount,
            date=on_date,
            title=" ".join(t for t in (title, tag) if t) or None,
            # Each record owns its places and sectors (later steps may change them).
            places=[Place(country=p.country, region=p.region) for p in places],
            sectors=[SectorShare(code=s.code, name=s.name) for s in sectors],
            **common,
        )
