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
* ``sniff_delimiter``: the most frequent of ``,`` ``;`` tab ``|`` (or other candidates) in a
  header line; ``sniff_header_delimiter`` does it for line N of an open file and rewinds it.
* XLSX: ``open_workbook`` opens a workbook read-only with cached formula results and always
  closes it (``LoadError`` when openpyxl cannot read it); ``sheet_rows`` numbers a sheet's rows
  as a spreadsheet does; ``xlsx_has_row`` tells whether any sheet has a wanted row near its top.

Cells
-----
* ``cell_text``: a cell as stripped text, ``None`` when empty; ``1234.0`` -> ``"1234"`` (ids and
  codes typed as numbers in a spreadsheet), a datetime -> its date. ``cell_at``: one cell of a
  row by index, stripped, ``None`` when empty or missing.
* ``parse_amount``: money in a number or text. See its docstring for the three separator modes.
  ``None`` means no amount (``None``, or text the caller lists in ``no_amount``); anything else
  that is not a finite number raises ``ValueError``. Exponents (``"1e3"``) are read as numbers;
  NaN and infinity are refused.
* ``parse_date``: a date from a date cell, an Excel serial number, or text (ISO or day-first).
  ``parse_iso_date``: the strict form for machine-written data (a ``yyyy-mm-dd`` prefix).
"""

from __future__ import annotations

import codecs
import math
import re
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
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


def sniff_delimiter(sample: str, candidates: Sequence[str] = DELIMITERS) -> str:
    """The candidate that occurs most often in ``sample`` (a header line).

    The earlier candidate wins a tie; the first candidate (``,``) when none occurs.
    """
    counts = {d: sample.count(d) for d in candidates}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else candidates[0]


def sniff_header_delimiter(stream: TextIO, header_row: int = 1, candidates: Sequence[str] = DELIMITERS) -> str:
    """``sniff_delimiter`` of line ``header_row`` (1-based) of an open text file, which is then rewound."""
    lines = [stream.readline() for _ in range(header_row)]
    stream.seek(0)
    return sniff_delimiter(lines[-1], candidates)


# --------------------------------------------------------------------------- workbooks


@contextmanager
def open_workbook(path: Path) -> Iterator[Workbook]:
    """The workbook at ``path``, read-only with cached formula results; closed when the block ends.

    ``LoadError`` ("not a readable XLSX workbook") when openpyxl cannot open it.
    """
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except _XLSX_ERRORS as exc:
        raise LoadError(str(path), f"not a readable XLSX workbook: {exc}") from exc
    try:
        yield wb
    finally:
        wb.close()


def sheet_rows(
    ws: Any, *, min_row: int = 1, max_row: int | None = None, reset_dimensions: bool = False
) -> Iterator[tuple[int, Sequence[Any]]]:
    """(row number as a spreadsheet shows it, cell values) of a worksheet, from ``min_row`` to ``max_row``.

    ``reset_dimensions``: ignore the sheet size stored in the file, which some writers get wrong
    (``A1``: read-only mode would then cut the rows). Rows then keep their own length instead of
    being padded to the sheet's width.
    """
    if reset_dimensions:
        reset = getattr(ws, "reset_dimensions", None)  # read-only sheets only
        if reset is not None:
            reset()
    return enumerate(ws.iter_rows(min_row=min_row, max_row=max_row, values_only=True), start=min_row)


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
    if value is None or isinstance(value, dict | list):
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
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise ValueError(f"not a finite number: {value!r}") from None
    elif isinstance(value, str):
        if no_amount and value.strip().lower() in no_amount:
            return None
        number = float(_number_text(value, decimal_separator))
    else:
        raise ValueError(f"not a number: {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
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
            raise ValueError(f"not a number: {value!r}")
        text = text.replace(decimal_separator, ".")
    else:
        raise ValueError(f"decimal_separator must be '.', ',' or 'auto', not {decimal_separator!r}")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {value!r}")
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
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A date cell without date formatting arrives as its serial number.
        if excel and 1 <= value < _EXCEL_END:
            return (_EXCEL_EPOCH + timedelta(days=float(value))).date()
        raise ValueError(f"not a date: {value!r}")
    text = str(value).strip()
    if date_format:
        try:
            return datetime.strptime(text, date_format).date()
        except ValueError as exc:
            raise ValueError(f"not a date in the format {date_format!r}: {text!r}") from exc
    try:
        if m := _ISO_DATE.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DAY_FIRST_DATE.fullmatch(text):
            day, month = int(m[1]), int(m[2])
            if month_first_fallback and month > 12 >= day:
                day, month = month, day
            return date(int(m[3]), month, day)
    except ValueError as exc:
        raise ValueError(f"not a date: {text!r} ({exc})") from exc
    raise ValueError(f"not a date: {text!r} (expected yyyy-mm-dd or dd/mm/yyyy)")


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
