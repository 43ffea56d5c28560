"""Reading the loaders' input files (text, CSV, XLSX) and parsing the values in their cells.

The loaders (``giving360``, ``hdx3w``, ``table``, ``crs``, ``fts``, ``iati``) share these helpers, so
that each quirk of a file or a cell is handled in one place. Nothing here knows a data standard:
where loaders read a value differently (a decimal comma, placeholders such as ``n/a``, Excel
serial numbers), the difference is a parameter and each loader passes its own.

Files
-----
* ``read_head``: the first bytes of a file, for detection; ``LoadError`` when it cannot be opened.
  ``refuse_old_xls``: ``LoadError`` for an old binary ``.xls`` workbook, which no loader reads.
* ``sniff_encoding``: UTF-8 with BOM -> ``utf-8-sig``; UTF-16 with BOM (LE or BE) -> ``utf-16``;
  on request UTF-16 *without* a BOM, recognised by its NUL bytes (``guess_utf16``); else
  ``utf-8`` when the whole file decodes as UTF-8, else ``cp1252`` when it decodes, else
  ``latin-1``, which decodes any byte. The whole file is checked, so a bad byte late in it cannot
  fail a load half-way. ``open_text`` opens a file as text in that encoding (or the one given),
  with ``newline=""`` as the ``csv`` module wants.
* Detection heads: ``decode_head`` gives the text of a file's first bytes (BOM, UTF-16, else UTF-8,
  else cp1252) and never raises; ``first_line`` ends at ``\\n``, ``\\r\\n`` or a bare ``\\r``;
  ``split_line`` splits one CSV line and never raises (a bare ``\\r`` made ``csv`` raise).
* ``read_json``: a whole JSON file, in the encodings above; ``LoadError`` with the line and column
  for invalid JSON, and for nesting too deep to parse or integers too long to convert.
* ``sniff_delimiter``: the most frequent of ``,`` ``;`` tab ``|`` (or other candidates) in a
  header line; ``sniff_header_delimiter`` does it for line N of an open file and rewinds it.
* CSV lines: ``BoundedLines`` hands a file's lines to ``csv.reader`` and refuses (``LoadError``) a
  line longer than ``MAX_LINE_CHARS`` (1 MiB; CRS 4 MiB), so a file without line breaks cannot
  take gigabytes; ``cut_short`` tells when the row just read is the cut end of a truncated file
  (the last line has no line break and the row has fewer cells than the header, or the file ends
  inside a quoted cell): loaders reject that row naming the first missing (or the cut) column.
  A truncated file cut inside its last, unquoted cell cannot be told from a whole one.
* XLSX: ``open_workbook`` opens a workbook read-only with cached formula results and always
  closes it (``LoadError`` when openpyxl cannot read it, or when a part unpacks to more than
  1 GiB, or to more than 100 MiB at over 500 times its packed size: a zip bomb); ``sheet_rows``
  numbers a sheet's rows as a spreadsheet does (``LoadError`` for a sheet openpyxl fails on
  half-way, or with a row past Excel's last, 1,048,576); ``xlsx_has_row`` tells whether any sheet
  has a wanted row near its top; ``visible`` whether a sheet is shown. Rules for what a person
  sees, shared by every loader that reads workbooks:

  - Formulas: the value Excel or LibreOffice saved with the formula is read. A formula saved
    without a value (openpyxl and some generators write none) is a ``FormulaWithoutValue``: an
    empty cell as text, and a ``ValueError`` from ``parse_amount`` / ``parse_date`` ("the formula
    =1000*2 in cell D2 has no saved value: open and save the workbook ..."), so the loader rejects
    the record naming the field. Formulas are never evaluated.
  - Merged cells: a range over several rows gives its value to each of them, in its first
    column (a funder written once for three grants); the other columns it covers stay empty (a
    title merged across two columns is read once).
  - Dates: date-formatted cells are dates; a date typed as a number (an Excel serial, e.g. 45031)
    is read as a date where the loader's field is a date (``parse_date(excel=True)``).
  - Hidden sheets (``hidden``/``veryHidden``) are not read by the 360Giving and 3W loaders, which
    say so when the only matching sheet is hidden; the generic table reads the first *visible*
    sheet unless ``[table] sheet`` names one (hidden or not).
  - Old binary ``.xls`` files, whatever their name, are refused with a hint (``refuse_old_xls``).

Cells
-----
* ``cell_text``: a cell as stripped text, ``None`` when empty; ``1234.0`` -> ``"1234"`` (ids and
  codes typed as numbers in a spreadsheet), a datetime -> its date. ``cell_at``: one cell of a
  row by index, stripped, ``None`` when empty or missing.
* ``parse_amount``: money in a number or text. See its docstring for the three separator modes.
  ``None`` means no amount (``None``, or text the caller lists in ``no_amount``); anything else
  that is not a finite number raises ``ValueError``. Exponents (``"1e3"``) are read as numbers;
  NaN, infinity (``"inf"``, ``"Infinity"``, ``1e999``, a 400-digit integer) and words (``"one
  thousand"``) are refused. Negative and zero amounts are numbers like any other: whether a
  loader keeps them is its rule (all keep negatives, as corrections; CRS alone drops zeros).
  Which loaders read a decimal comma: HDX 3W (``"auto"``), CRS in ``;``-separated files
  (``"auto"``), the generic table with ``decimal_separator = ","``; 360Giving, CRS in other files
  and the table by default use ``"."`` (``"1.234,56"`` and ``"1 234,56"`` refused, ``"1'234.56"``
  read); IATI and FTS do not use ``parse_amount``: plain decimal numbers only.
* ``shown``: a value for a message, its ``repr`` cut to about 80 characters.
* ``parse_date``: a date from a date cell, an Excel serial number, or text (ISO or day-first).
  ``parse_iso_date``: the strict form for machine-written data (a ``yyyy-mm-dd`` prefix).
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook

from .errors import LoadError

HEAD_BYTES = 64 * 1024  # how much of a file detection reads
XLSX_MAGIC = b"PK\x03\x04"  # a zip archive: an XLSX workbook, or another zip
XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # an OLE2 compound file: an old binary .xls workbook
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
EXCEL_MAX_ROWS = 1_048_576
MAX_LINE_CHARS = 1 << 20  # the longest line a CSV loader reads (bounded_lines)

# Text that means "no amount" in hand-made tables (pass it as ``no_amount``).
NO_AMOUNT = frozenset({"", "-", "–", "—", "n/a", "na", "none", "null", "nil"})

# Errors openpyxl raises for a file that is not a readable workbook.
_XLSX_ERRORS = (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError)

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# A currency code or symbol around the number, and what people group digits with (spaces,
# no-break spaces, Swiss apostrophes).
_MONEY_NOISE = re.compile(r"^(?:us\$|usd)|usd$|[$€£¥₹\s\u00a0\u202f']", re.IGNORECASE)
_COMMA_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")  # 1,234,567.5
_DOT_GROUPED = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?")  # 1.234.567,5
# In "auto" mode "1.234" stays one point two three four: dot groups need a decimal comma or two groups.
_DOT_GROUPED_AUTO = re.compile(r"[+-]?\d{1,3}(?:(?:\.\d{3})+,\d*|(?:\.\d{3}){2,})")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")

_SAVE_VALUES = "open and save the workbook in Excel or LibreOffice so that its values are stored, or save it as CSV"
_LONG_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ISO_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ].*)?")
_DAY_FIRST_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[T ].*)?")
_ISO_DAY_PREFIX = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_EXCEL_EPOCH = datetime(1899, 12, 30)
_EXCEL_END = 2958466  # the serial number of 10000-01-01, past Excel's last date


# --------------------------------------------------------------------------- files


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of ``path``; ``LoadError`` ("cannot open the file") when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise LoadError(str(path), f"cannot open the file: {exc.strerror or exc}") from exc


def refuse_old_xls(path: Path, head: bytes) -> None:
    """Raise ``LoadError`` when ``head`` is the start of an old binary ``.xls`` workbook."""
    if head.startswith(XLS_MAGIC):
        raise LoadError(str(path), "old binary .xls workbooks are not read; save it as .xlsx or CSV")


def guess_utf16(sample: bytes) -> str | None:
    """``utf-16-le`` / ``utf-16-be`` when every other byte of a mostly ASCII start is NUL, else None.

    That is how UTF-16 without a byte-order mark looks; a BOM is not looked for here.
    """
    sample = sample[:512]
    if len(sample) < 8:
        return None
    odd_nuls = sample[1::2].count(0) / len(sample[1::2])
    even_nuls = sample[0::2].count(0) / len(sample[0::2])
    if odd_nuls > 0.9 and even_nuls < 0.1:
        return "utf-16-le"
    if even_nuls > 0.9 and odd_nuls < 0.1:
        return "utf-16-be"
    return None


def sniff_encoding(path: Path, *, utf16_without_bom: bool = False) -> str:
    """The text encoding of a file: see "Files" in the module docstring.

    ``utf16_without_bom``: also recognise UTF-16 without a byte-order mark from its NUL bytes
    (OECD bulk files); otherwise such a file is read as UTF-8, NULs included.
    """
    with open(path, "rb") as fh:
        start = fh.read(4096)
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if utf16_without_bom and (guess := guess_utf16(start)):
        return guess
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    return "latin-1"  # decodes any byte


def open_text(path: Path, encoding: str | None = None, *, utf16_without_bom: bool = False) -> TextIO:
    """``path`` opened to read text for ``csv`` (``newline=""``), in ``encoding`` or the sniffed one."""
    if encoding is None:
        encoding = sniff_encoding(path, utf16_without_bom=utf16_without_bom)
    return open(path, encoding=encoding, newline="")


def decode_head(head: bytes, *, utf16_without_bom: bool = False) -> str:
    """The text of a file's first bytes, for detection; never raises.

    A BOM says the encoding (UTF-8, UTF-16 LE/BE); with ``utf16_without_bom`` UTF-16 is also
    recognised by its NUL bytes; else UTF-8 (a character cut at the end of the head is dropped),
    else cp1252 with undecodable bytes replaced.
    """
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    elif utf16_without_bom and (guess := guess_utf16(head)):
        return head[: len(head) // 2 * 2].decode(guess, errors="replace")
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a character cut at the end of the head
            return head[: exc.start].decode("utf-8", errors="replace")
        return head.decode("cp1252", errors="replace")


def first_line(text: str) -> str:
    """The first line of ``text``, whatever ends it (``\\n``, ``\\r\\n`` or a bare ``\\r``)."""
    return _LINE_BREAK.split(text, maxsplit=1)[0]


def split_line(line: str, delimiter: str = ",") -> list[str]:
    """The cells of one CSV line, stripped; ``[]`` when ``csv`` cannot split it. Never raises.

    For detection heads, which may hold stray quotes, NUL bytes or line breaks (a bare ``\\r``
    makes ``csv`` raise "new-line character seen in unquoted field").
    """
    try:
        return [cell.strip() for cell in next(csv.reader([_LINE_BREAK.sub(" ", line)], delimiter=delimiter), [])]
    except csv.Error:
        return []


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; ``LoadError`` naming the file for anything that is not one.

    Encoding: a UTF-8 or UTF-16 BOM is followed; otherwise UTF-8, else cp1252, else Latin-1 (as
    ``sniff_encoding``: JSON should be UTF-8, but hand-saved files are not always). The error
    gives the line and column of invalid JSON, and refuses nesting too deep to read (Python's
    parser is recursive) and integers too long to convert.
    """
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(file, f"cannot open the file: {exc.strerror or exc}") from None
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "cp1252", "latin-1")
    text = None
    for encoding in encodings:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError as exc:
            problem = exc
    del data
    if text is None:
        raise LoadError(file, f"not valid JSON: bad text encoding ({problem.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(file, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        # json.loads recurses once per nested array or object: a hostile file can exhaust the stack.
        raise LoadError(file, "not valid JSON: arrays or objects nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (sys.set_int_max_str_digits)
        raise LoadError(file, f"not valid JSON: {exc}") from None


class NoJsonList(Exception):
    """The JSON document is not an object with the list ``stream_json_list`` was asked for."""


class _NotStreamed(Exception):
    """Something the streamed reading leaves to ``read_json``: its answer, or its error, is the rule."""


_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, exactly
_JSON_FOLLOWERS = frozenset(" \t\n\r,:]}")  # what may follow a whole value
_JSON_DECODER = json.JSONDecoder()  # what json.loads uses: NaN, big numbers and nesting read the same


def stream_json_list(path: Path, key: str, chunk_chars: int = 1 << 20) -> Iterator[Any]:
    """The items of the top-level object's ``key`` list, one at a time: the values, in order, of
    ``read_json(path)[key]``, but read in chunks, so memory does not grow with the file.

    Each item is read by the decoder ``json.loads`` uses, from text decoded as ``read_json``
    decodes it, so values (``NaN``, huge numbers, duplicate keys inside an item) are the same.
    Anything else (a top-level array, invalid JSON, nesting too deep, a bad encoding) is left to
    ``read_json``: before the first item, the whole document is read as before; after it, the
    error is ``read_json``'s, so the messages are the same. Raises ``NoJsonList`` when there is no
    such list, and ``LoadError`` when ``key`` is given twice after its list was read (the last
    one would count, and the first has been handed out).
    """
    handed = 0
    try:
        for item in _streamed_list(path, key, chunk_chars):
            handed += 1
            yield item
    except _NotStreamed:
        document = read_json(path)  # raises the error the file has, with its line and column
        if handed:
            raise LoadError(str(path), "not valid JSON: the file changed while it was read") from None
        if not isinstance(document, dict) or not isinstance(document.get(key), list):
            raise NoJsonList(key) from None
        yield from document[key]


class _JsonText:
    """Decoded text of a file, read a chunk at a time, with a position in the current buffer."""

    def __init__(self, stream: TextIO, chunk_chars: int):
        self.stream, self.chunk_chars = stream, chunk_chars
        self.buffer, self.pos, self.at_end = "", 0, False

    def more(self) -> bool:
        """Read on (at least doubling what is held, so a huge item is not re-read chunk by chunk)."""
        if self.at_end:
            return False
        try:
            chunk = self.stream.read(max(self.chunk_chars, len(self.buffer) - self.pos))
        except (UnicodeDecodeError, OSError):
            raise _NotStreamed from None
        if not chunk:
            self.at_end = True
            return False
        self.buffer, self.pos = self.buffer[self.pos :] + chunk, 0
        return True

    def next_char(self) -> str:
        """The next character that is not whitespace, not consumed; "" at the end of the file."""
        while True:
            self.pos = _JSON_SPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer) or not self.more():
                return self.buffer[self.pos : self.pos + 1]

    def expect(self, *chars: str) -> str:
        char = self.next_char()
        if char not in chars or not char:
            raise _NotStreamed
        self.pos += 1
        return char

    def value(self) -> Any:
        self.next_char()
        while True:
            try:
                value, end = _JSON_DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError:
                if self.more():  # the value may go on in the next chunk
                    continue
                raise _NotStreamed from None
            except (RecursionError, ValueError):
                raise _NotStreamed from None
            if (end == len(self.buffer) or self.buffer[end] not in _JSON_FOLLOWERS) and self.more():
                continue  # a number cut at the end of the buffer ("1" of "1e5") goes on in the next chunk
            self.pos = end
            return value


def _streamed_list(path: Path, key: str, chunk_chars: int) -> Iterator[Any]:
    try:
        stream = open(path, encoding=sniff_encoding(path), newline="")  # noqa: SIM115 - closed below
    except OSError:
        raise _NotStreamed from None
    with stream:
        text = _JsonText(stream, chunk_chars)
        if text.next_char() != "{":
            raise _NotStreamed
        text.pos += 1
        found = False
        if text.next_char() == "}":
            text.pos += 1
        else:
            while True:
                if text.next_char() != '"':
                    raise _NotStreamed
                name = text.value()
                text.expect(":")
                if name == key and found:
                    raise LoadError(str(path), f'not valid as a package: "{key}" is given twice')
                if name == key and text.next_char() == "[":
                    found = True
                    text.pos += 1
                    if text.next_char() == "]":
                        text.pos += 1
                    else:
                        while True:
                            yield text.value()
                            if text.expect(",", "]") == "]":
                                break
                else:
                    text.value()  # another member: read and dropped
                if text.expect(",", "}") == "}":
                    break
        if text.next_char():
            raise _NotStreamed  # more after the document: read_json says what
        if not found:
            raise NoJsonList(key)


class BoundedLines:
    """The lines of an open text file (line ends kept), for ``csv.reader``; ``LoadError`` for one
    longer than ``limit`` characters.

    ``csv`` holds a whole line and every cell of a row in memory: a file without line breaks (a
    binary file, or a 50 MB line of ``a,b,c,...``) would take gigabytes and minutes. ``first`` is
    the number of the first line read, for the message.

    ``cut`` becomes True when the last line, without a line break, has been handed out, and
    ``at_end`` when the file has been read to its end; ``last`` is the last line handed out. A row
    read from the last line with fewer cells than the header, or ending inside a quoted cell, is
    the end of a truncated file (``cut_short``), not a row whose trailing empty cells were left out.
    """

    def __init__(self, stream: TextIO, file: str, limit: int = MAX_LINE_CHARS, first: int = 1):
        self.stream, self.file, self.limit, self.number = stream, file, limit, first
        self.cut = self.at_end = False
        self.last = ""

    def __iter__(self) -> Iterator[str]:
        while line := self.stream.readline(self.limit + 1):
            if len(line) > self.limit:
                raise LoadError(
                    self.file,
                    f"line {self.number} is longer than {self.limit:,} characters: not a table that can be read "
                    "(a binary file, or a file without line breaks?)",
                )
            self.cut = not line.endswith(("\n", "\r"))
            self.last = line
            yield line
            self.number += 1
        self.at_end = True  # csv hands out a row cut inside quotes only after this


def cut_short(
    lines: BoundedLines, values: Sequence[Any], width: int, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL
) -> tuple[int, str] | None:
    """(index of the column to name, reason) when ``values``, the row just read, is the cut end of a
    truncated file (see ``BoundedLines``); else None.

    ``csv`` quietly ends a cell that is still quoted at the end of the file; the last line read
    again, strictly, tells (a stray ``"`` inside an unquoted cell does not count).
    """
    if not values or not (lines.cut or lines.at_end):
        return None
    if quoting != csv.QUOTE_NONE and _opens_a_quote(lines.last, delimiter):
        reason = "the file ends inside a quoted cell of this row (no closing quote): truncated?"
        return len(values) - 1, reason
    if lines.cut and len(values) < width:
        reason = f"the file ends in the middle of this row ({len(values)} of {width} cells, no line break after it)"
        return len(values), reason + ": truncated?"
    return None


def _opens_a_quote(line: str, delimiter: str) -> bool:
    try:
        for _ in csv.reader([line], delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def sniff_delimiter(sample: str, candidates: Sequence[str] = DELIMITERS) -> str:
    """The candidate that occurs most often in ``sample`` (a header line).

    The earlier candidate wins a tie; the first candidate (``,``) when none occurs.
    """
    counts = {d: sample.count(d) for d in candidates}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else candidates[0]


def sniff_header_delimiter(stream: TextIO, header_row: int = 1, candidates: Sequence[str] = DELIMITERS) -> str:
    """``sniff_delimiter`` of line ``header_row`` (1-based) of an open text file, which is then rewound."""
    lines = [stream.readline(MAX_LINE_CHARS) for _ in range(header_row)]  # a part of a longer one is enough
    stream.seek(0)
    return sniff_delimiter(lines[-1], candidates)


# --------------------------------------------------------------------------- workbooks


@dataclass(frozen=True)
class FormulaWithoutValue:
    """A formula cell saved without its computed value, as ``sheet_rows`` gives it.

    Excel and LibreOffice store each formula's last result; files written by openpyxl and some
    generators store none, so the value is unknown. Text helpers (``cell_text``) read it as an
    empty cell; ``parse_amount`` and ``parse_date`` refuse it (``ValueError``), so a loader rejects
    the record naming the field.
    """

    formula: str
    coordinate: str

    def __str__(self) -> str:
        return f"the formula {self.formula} in cell {self.coordinate} has no saved value"


@dataclass
class _SheetExtras:
    formulas: dict[int, list[tuple[int, FormulaWithoutValue]]]  # row -> (column, cell), 1-based
    merges: list[tuple[int, int, int]]  # (first row, last row, first column) of ranges over several rows


# A workbook part that unpacks to more than this, or to more than _MAX_RATIO times its packed size
# past _RATIO_FLOOR, is a zip bomb (openpyxl loads some parts, e.g. shared strings, whole).
_MAX_PART_BYTES = 1 << 30
_MAX_RATIO, _RATIO_FLOOR = 500, 100 << 20
_SAFE_XML = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _refuse_zip_bomb(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # openpyxl says why the file cannot be opened
    for part in parts:
        size, packed = part.file_size, max(part.compress_size, 1)
        if size > _MAX_PART_BYTES or (size > _RATIO_FLOOR and size > _MAX_RATIO * packed):
            raise LoadError(
                str(path),
                f"not read: the workbook part {part.filename} unpacks to {size / 2**20:.0f} MB from "
                f"{packed / 2**20:.1f} MB (a zip bomb, or a sheet too large to load here); save it as CSV",
            )


@contextmanager
def open_workbook(path: Path) -> Iterator[Workbook]:
    """The workbook at ``path``, read-only with cached formula results; closed when the block ends.

    ``LoadError`` ("not a readable XLSX workbook") when openpyxl cannot open it, or when a part
    unpacks to more than 1 GiB (or more than 100 MiB at over 500 times its packed size: a zip bomb).
    """
    _refuse_zip_bomb(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever openpyxl fails with on a corrupt workbook
        if isinstance(exc, LoadError):
            raise
        detail = str(exc) if isinstance(exc, _XLSX_ERRORS) else f"{type(exc).__name__}: {exc}"
        raise LoadError(str(path), f"not a readable XLSX workbook: {detail}") from exc
    try:
        yield wb
    finally:
        wb.close()


def visible(ws: Any) -> bool:
    """Whether a worksheet is shown (not ``hidden`` or ``veryHidden``)."""
    return getattr(ws, "sheet_state", "visible") == "visible"


def sheet_rows(
    ws: Any, *, min_row: int = 1, max_row: int | None = None, reset_dimensions: bool = False
) -> Iterator[tuple[int, Sequence[Any]]]:
    """(row number as a spreadsheet shows it, cell values) of a worksheet, from ``min_row`` to ``max_row``.

    ``reset_dimensions``: ignore the sheet size stored in the file, which some writers get wrong
    (``A1``: read-only mode would then cut the rows). Rows then keep their own length instead of
    being padded to the sheet's width.

    Values are openpyxl's, with two fixes that make them what a person sees in the sheet:

    * a formula saved without its result is a ``FormulaWithoutValue`` instead of an empty cell
      (with a saved result, the result is the value);
    * a merged range over several rows gives its value to each of those rows, in the range's first
      column (rows merged for grouping, e.g. one funder over three grants); the other columns a
      range covers stay empty, so a title merged across two columns is read once.

    A sheet openpyxl fails on half-way (a corrupt zip member, broken XML) raises ``LoadError``.
    """
    if reset_dimensions:
        reset = getattr(ws, "reset_dimensions", None)  # read-only sheets only
        if reset is not None:
            reset()
    file = str(getattr(getattr(getattr(ws, "parent", None), "_archive", None), "filename", None) or "workbook")
    stated = getattr(ws, "max_row", None)  # the size the sheet states, which read-only mode reads up to
    if isinstance(stated, int) and stated > EXCEL_MAX_ROWS:
        raise LoadError(file, f"sheet {ws.title!r} says it has {stated:,} rows, past Excel's last row "
                        f"({EXCEL_MAX_ROWS:,}): a corrupt workbook")
    extras = _sheet_extras(ws, file)
    numbered = _guarded(ws, ws.iter_rows(min_row=min_row, max_row=max_row, values_only=True), file, min_row)
    if extras is None:
        return numbered
    return _with_extras(numbered, extras)


def _guarded(ws: Any, rows: Iterator[Sequence[Any]], file: str, first: int) -> Iterator[tuple[int, Sequence[Any]]]:
    """Rows numbered from ``first``; ``LoadError`` for any failure inside openpyxl, or a row past Excel's last."""
    rownum = first
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - any failure inside openpyxl means the sheet is unreadable
            raise LoadError(file, f"sheet {ws.title!r} cannot be read: {type(exc).__name__}: {exc}") from exc
        if rownum > EXCEL_MAX_ROWS:
            # openpyxl hands out every empty row up to a cell's row: a cell at row 2e9 meant minutes of work.
            raise LoadError(file, f"sheet {ws.title!r} has a row past Excel's last row ({EXCEL_MAX_ROWS:,}): "
                            "a corrupt workbook")
        yield rownum, values
        rownum += 1


def _with_extras(
    rows: Iterator[tuple[int, Sequence[Any]]], extras: _SheetExtras
) -> Iterator[tuple[int, Sequence[Any]]]:
    pending = sorted(extras.merges)
    active: list[tuple[int, int, Any]] = []  # (last row, column, value) of merges being filled
    for rownum, values in rows:
        cells = list(values)
        for column, formula in extras.formulas.get(rownum, ()):
            while len(cells) < column:
                cells.append(None)
            if cells[column - 1] is None:
                cells[column - 1] = formula
        while pending and pending[0][0] <= rownum:
            first, last, column = pending.pop(0)
            if first == rownum and column <= len(cells) and cells[column - 1] is not None:
                active.append((last, column, cells[column - 1]))
            # a range that starts above the first row read has no value to give
        for last, column, value in active:
            if rownum <= last:
                while len(cells) < column:
                    cells.append(None)
                if cells[column - 1] is None:
                    cells[column - 1] = value
        active = [m for m in active if m[0] > rownum]
        yield rownum, cells


def _sheet_extras(ws: Any, file: str) -> _SheetExtras | None:
    """Formulas without a saved value and merged ranges over several rows of a read-only sheet.

    None when the sheet has neither (most sheets: a byte scan decides before any XML is parsed)
    or is not a read-only sheet. The sheet's XML is parsed without DTDs, entities or network.
    """
    archive = getattr(getattr(ws, "parent", None), "_archive", None)
    part = getattr(ws, "_worksheet_path", None)
    if archive is None or part is None:
        return None
    try:
        with archive.open(part) as src:
            if not _has_markers(src):
                return None
        extras = _SheetExtras({}, [])
        with archive.open(part) as src:
            _scan_sheet(src, extras)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt sheet: say so, as reading it would
        raise LoadError(file, f"sheet {ws.title!r} cannot be read: {type(exc).__name__}: {exc}") from exc
    return extras if extras.formulas or extras.merges else None


def _has_markers(src: Any) -> bool:
    """Whether a sheet's XML may hold a formula (``<f``, ``:f>``, ``:f ``) or a merged range."""
    tail = b""
    while chunk := src.read(1 << 20):
        data = tail + chunk
        if b"<f" in data or b":f>" in data or b":f " in data or b"mergeCell" in data:
            return True
        tail = data[-16:]
    return False


def _scan_sheet(src: Any, extras: _SheetExtras) -> None:
    from lxml import etree
    from openpyxl.utils import coordinate_to_tuple, get_column_letter, range_boundaries

    row_number, column_number = 0, 0
    for event, element in etree.iterparse(src, events=("start", "end"), **_SAFE_XML):
        local = _local(element)
        if event == "start":
            if local == "row":
                row_number = int(element.get("r") or row_number + 1)
                column_number = 0
            continue
        if local == "c":
            ref = element.get("r")
            if ref:
                row_number, column_number = coordinate_to_tuple(ref)
            else:
                column_number += 1
            formula = next((child for child in element if _local(child) == "f"), None)
            if formula is not None:
                saved = next((child for child in element if _local(child) == "v"), None)
                kind = element.get("t")
                gave_empty_text = saved is not None and kind == "str"  # a formula that gave "": saved
                if (saved is None or not saved.text) and not gave_empty_text and kind != "inlineStr":
                    text = f"={formula.text}" if formula.text else "(a shared formula)"
                    ref = ref or f"{get_column_letter(max(column_number, 1))}{row_number}"
                    extras.formulas.setdefault(row_number, []).append(
                        (column_number, FormulaWithoutValue(text, ref))
                    )
        elif local == "row":
            element.clear()
            while element.getprevious() is not None:  # keep memory flat over long sheets
                del element.getparent()[0]
        elif local == "mergeCell":
            ref = element.get("ref") or ""
            if ":" in ref:
                min_col, min_row, _max_col, max_row = range_boundaries(ref)
                if min_row is not None and max_row is not None and max_row > min_row:
                    extras.merges.append((min_row, max_row, min_col))


def _local(element: Any) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def xlsx_has_row(
    path: Path, wanted: Callable[[Sequence[Any]], bool], max_row: int, *, reset_dimensions: bool = False
) -> bool:
    """Whether a sheet of the workbook has a row among its first ``max_row`` for which ``wanted`` is true.

    False for a file openpyxl cannot read, or a sheet it fails on: such a workbook is not
    recognised, and reading it says why. The workbook is closed either way.
    """
    try:
        with open_workbook(path) as wb:
            for ws in wb.worksheets:
                for _, values in sheet_rows(ws, max_row=max_row, reset_dimensions=reset_dimensions):
                    if wanted(values):
                        return True
    except Exception:  # noqa: BLE001 - any unreadable workbook or corrupt sheet simply does not match
        return False
    return False


# --------------------------------------------------------------------------- cells


def cell_text(value: Any) -> str | None:
    """A cell as stripped text; None for an empty cell, a NaN or infinite number, a JSON object or array.

    A whole float (1234.0, an id typed as a number in a spreadsheet) is written "1234"; a
    datetime is written as its date.
    """
    if value.__class__ is str:  # the usual cell, first: str() of a str is itself
        return value.strip() or None
    if value is None or isinstance(value, dict | list | FormulaWithoutValue):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    text = str(value).strip()
    return text or None


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (a 100 kB cell stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 12]}... ({len(text):,} characters)"


MAX_NAME_CHARS = 200  # longer text is no country's name or code (geography.to_iso3 refuses it too)


def country_text(value: str | None) -> str | None:
    """``value`` when it can be a country's name or code (what ``geography.to_iso3`` is given), else None.

    Not text longer than ``MAX_NAME_CHARS``: country_converter's name matching takes time quadratic
    in the length (20,000 characters took 50 s, so one cell could stall a load), nor a number of
    more than 12 digits (``to_iso3`` reads digits as a numeric code: 400 of them overflowed a float).
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > MAX_NAME_CHARS or (len(text) > 12 and _LONG_NUMBER.fullmatch(text)):
        return None
    return text


def country_iso3(value: str | None) -> str | None:
    """``geography.to_iso3`` of ``value`` when ``country_text`` accepts it; else None."""
    from . import geography  # here, so that textfiles stays importable on its own

    text = country_text(value)
    return geography.to_iso3(text) if text else None


def cell_at(values: Sequence[Any], index: int | None) -> Any:
    """The cell at ``index`` of a row, text stripped; None when ``index`` is None or past the row's end, or the
    cell is empty."""
    if index is None or index >= len(values):
        return None
    value = values[index]
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def parse_amount(value: Any, decimal_separator: str = ".", *, no_amount: Collection[str] = ()) -> float | None:
    """A money amount from a number or text, as a float.

    Text may carry currency symbols (``$ € £ ¥ ₹``), a leading ``USD``/``US$`` or a trailing
    ``USD``, and spaces or apostrophes between digit groups; they are dropped. Then, by
    ``decimal_separator``:

    * ``"."``: ``,`` groups thousands, only in whole groups of three (``"1,234.50"``); ``"12,5"`` is
      refused.
    * ``","``: ``.`` groups thousands (``"12.500,50"``), the decimal comma is read; ``"1.5"`` is
      refused.
    * ``"auto"``: a plain number first (``"1.234"`` is one point two three four), then
      ``"1,234.5"``, then ``"1.234,5"`` or ``"1.234.567"``, then a decimal comma ``"12,5"``.

    Exponents are numbers (``"1e3"`` is 1000.0). Returns None for None, and for text that, stripped
    and lower-cased, is in ``no_amount`` (e.g. ``NO_AMOUNT``: empty, ``-``, ``n/a``, ``none`` ...).
    Raises ``ValueError`` ("not a number: ...", "not a finite number: ...") for anything else that is
    not a finite number, including booleans, empty text (unless listed), NaN and infinity.
    """
    if value is None:
        return None
    if isinstance(value, FormulaWithoutValue):
        raise ValueError(f"{value}: {_SAVE_VALUES}")
    if isinstance(value, bool):
        raise ValueError(f"not a number: {shown(value)}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise ValueError(f"not a finite number: {shown(value)}") from None
    elif isinstance(value, str):
        if no_amount and value.strip().lower() in no_amount:
            return None
        number = float(_number_text(value, decimal_separator))
    else:
        raise ValueError(f"not a number: {shown(value)}")
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {shown(value)}")
    return number


def _number_text(value: str, decimal_separator: str) -> str:
    """``value`` rewritten as a plain number ``float`` reads; ``ValueError`` when it is not one."""
    text = _MONEY_NOISE.sub("", value.strip())
    if decimal_separator == "auto":
        if _NUMBER.fullmatch(text):
            pass
        elif _COMMA_GROUPED.fullmatch(text):
            text = text.replace(",", "")
        elif _DOT_GROUPED_AUTO.fullmatch(text):
            text = text.replace(".", "").replace(",", ".")
        elif _DECIMAL_COMMA.fullmatch(text):
            text = text.replace(",", ".")
    elif decimal_separator in (".", ","):
        group, grouped = (",", _COMMA_GROUPED) if decimal_separator == "." else (".", _DOT_GROUPED)
        if grouped.fullmatch(text):
            text = text.replace(group, "")
        if group in text:
            raise ValueError(f"not a number: {shown(value)}")
        text = text.replace(decimal_separator, ".")
    else:
        raise ValueError(f"decimal_separator must be '.', ',' or 'auto', not {decimal_separator!r}")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {shown(value)}")
    return text


def parse_date(
    value: Any, date_format: str | None = None, *, excel: bool = False, month_first_fallback: bool = False
) -> date | None:
    """A date from a cell or a JSON value.

    * ``date`` and ``datetime`` values: their date (a datetime's date as written, no time-zone shift).
    * Numbers: with ``excel``, an Excel serial number from 1 (``44197`` is 2021-01-01); otherwise,
      and out of that range, not a date.
    * Text, with ``date_format``: ``datetime.strptime`` only. Without: ISO ``yyyy-mm-dd`` or
      ``yyyy/mm/dd`` (a time part after ``T`` or a space is ignored, ``Z`` or an offset included,
      and not applied), else day-first ``dd/mm/yyyy`` (also with ``.`` or ``-``). With
      ``month_first_fallback``, ``01/15/2024`` is read month-first when the day-first reading is
      impossible (month > 12 >= day).

    None for None and empty text; ``ValueError`` for a value that is there but is not a date.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, FormulaWithoutValue):
        raise ValueError(f"{value}: {_SAVE_VALUES}")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A date cell without date formatting arrives as its serial number.
        if excel and 1 <= value < _EXCEL_END:
            return (_EXCEL_EPOCH + timedelta(days=float(value))).date()
        raise ValueError(f"not a date: {shown(value)}")
    text = str(value).strip()
    if date_format:
        try:
            return datetime.strptime(text, date_format).date()
        except ValueError as exc:
            raise ValueError(f"not a date in the format {date_format!r}: {shown(text)}") from exc
    try:
        if m := _ISO_DATE.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DAY_FIRST_DATE.fullmatch(text):
            day, month = int(m[1]), int(m[2])
            if month_first_fallback and month > 12 >= day:
                day, month = month, day
            return date(int(m[3]), month, day)
    except ValueError as exc:
        raise ValueError(f"not a date: {shown(text)} ({exc})") from exc
    raise ValueError(f"not a date: {shown(text)} (expected yyyy-mm-dd or dd/mm/yyyy)")


def parse_iso_date(text: str | None) -> date | None:
    """The ``yyyy-mm-dd`` date ``text`` starts with, when it is a real date in 1900-2100; else None.

    Strict, for machine-written values (API JSON, XML attributes): surrounding whitespace and
    whatever follows the date (a time) are ignored; no other form is read.
    """
    match = _ISO_DAY_PREFIX.match((text or "").strip())
    if not match:
        return None
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2100 else None
