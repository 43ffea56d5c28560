"""The shared file readers and cell parsers every loader uses (data_sources.textfiles)."""

from __future__ import annotations

import codecs
import math
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from data_sources import textfiles
from data_sources.errors import LoadError
from data_sources.textfiles import (
    NO_AMOUNT,
    cell_at,
    cell_text,
    open_text,
    open_workbook,
    parse_amount,
    parse_date,
    parse_iso_date,
    read_head,
    refuse_old_xls,
    sheet_rows,
    sniff_delimiter,
    sniff_encoding,
    sniff_header_delimiter,
    xlsx_has_row,
)

TEXT = "Title,Montant\nCafé,£1 234\n"

# --- encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("cp1252"), "cp1252"),  # "£" and "é" are single bytes that are not UTF-8
        (b"Title\n\x81\x8d\x8f\x90\x9d\n", "latin-1"),  # bytes cp1252 leaves undefined
        (b"", "utf-8"),
    ],
)
def test_sniff_encoding(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(data)
    assert sniff_encoding(path) == expected
    with open_text(path) as fh:
        text = fh.read()
    assert text == data.decode(expected)
    if expected not in ("latin-1",) and data:
        assert text == TEXT  # the BOM is not part of the text


def test_a_bad_byte_late_in_the_file_is_found_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 400_000 + "é,£\n".encode("cp1252"))  # past the first MiB
    assert sniff_encoding(path) == "cp1252"


def test_utf16_without_bom_only_on_request(tmp_path: Path) -> None:
    path = tmp_path / "bulk.txt"
    path.write_bytes("DonorName|USD_Commitment\nNorway|1\n".encode("utf-16-le"))
    assert sniff_encoding(path, utf16_without_bom=True) == "utf-16-le"
    assert sniff_encoding(path) == "utf-8"  # NULs are valid UTF-8: without the flag it is not guessed
    path.write_bytes("DonorName|USD_Commitment\n".encode("utf-16-be"))
    with open_text(path, utf16_without_bom=True) as fh:
        assert fh.read() == "DonorName|USD_Commitment\n"


def test_open_text_keeps_line_endings_for_csv_and_takes_a_given_encoding(tmp_path: Path) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes('a,"x\r\ny"\r\n'.encode("cp1252"))
    with open_text(path, "latin-1") as fh:
        assert fh.encoding == "latin-1" and fh.read() == 'a,"x\r\ny"\r\n'


# --- heads -----------------------------------------------------------------------------------------


def test_read_head_and_old_xls(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"x" * 100)
    assert read_head(path, 8) == b"\xd0\xcf\x11\xe0xxxx"
    with pytest.raises(LoadError, match="old binary .xls"):
        refuse_old_xls(path, read_head(path))
    refuse_old_xls(path, b"PK\x03\x04")  # anything else passes
    with pytest.raises(LoadError, match="cannot open the file"):
        read_head(tmp_path / "missing.csv")


# --- delimiters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a,b,c\n", ","),
        ("a;b;c,d\n", ";"),
        ("a\tb\tc\n", "\t"),
        ("a|b|c;d\n", "|"),
        ("a;b,c\n", ","),  # a tie: the earlier candidate
        ("abc\n", ","),  # none: the first candidate
    ],
)
def test_sniff_delimiter(line: str, expected: str) -> None:
    assert sniff_delimiter(line) == expected


def test_sniff_delimiter_with_other_candidates() -> None:
    assert sniff_delimiter("a|b;c;d", ("|", ";")) == ";"
    assert sniff_delimiter("abc", ("|", ";")) == "|"


def test_sniff_header_delimiter_reads_the_header_line_and_rewinds(tmp_path: Path) -> None:
    path = tmp_path / "file.csv"
    path.write_text("Exported 2024, by us\nA;B;C\n1;2;3\n", encoding="utf-8")
    with open_text(path) as fh:
        assert sniff_header_delimiter(fh) == ","
        assert sniff_header_delimiter(fh, header_row=2) == ";"
        assert fh.readline() == "Exported 2024, by us\n"
    path.write_bytes(codecs.BOM_UTF16_LE + "A;B\n1;2\n".encode("utf-16-le"))
    with open_text(path) as fh:
        assert sniff_header_delimiter(fh) == ";" and fh.read() == "A;B\n1;2\n"


# --- cells -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  G-1 ", "G-1"),
        ("   ", None),
        (None, None),
        (1234.0, "1234"),
        (12.5, "12.5"),
        (7, "7"),
        (math.nan, None),
        (math.inf, None),
        (datetime(2021, 3, 4, 5, 6), "2021-03-04"),
        (date(2021, 3, 4), "2021-03-04"),
        ({"en": "x"}, None),
        (["x"], None),
        (True, "True"),
    ],
)
def test_cell_text(value: Any, expected: str | None) -> None:
    assert cell_text(value) == expected


def test_cell_at() -> None:
    row = (" a ", "", None, 5, "  ")
    assert [cell_at(row, i) for i in (0, 1, 2, 3, 4, 5, None)] == ["a", None, None, 5, None, None, None]


# --- amounts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "separator", "expected"),
    [
        ("1,234.50", ".", 1234.5),
        ("£1,234", ".", 1234.0),
        ("1 234", ".", 1234.0),
        ("1\u00a0234,50", ",", 1234.5),
        ("12,5", ",", 12.5),
        ("12.500,50", ",", 12500.5),
        ("-50", ".", -50.0),
        ("USD 1,000", ".", 1000.0),
        ("1'000 usd", ".", 1000.0),
        ("1e3", ".", 1000.0),  # exponents are numbers: every loader accepted them already
        ("1,234", ",", 1.234),
        (12, ".", 12.0),
        (-3.5, ",", -3.5),
        # "auto": a plain number first, then thousands commas, then dot groups, then a decimal comma
        ("1.234", "auto", 1.234),
        ("1,234.5", "auto", 1234.5),
        ("1.234,5", "auto", 1234.5),
        ("1.234.567", "auto", 1234567.0),
        ("12,5", "auto", 12.5),
        ("1,234", "auto", 1234.0),
    ],
)
def test_parse_amount(value: Any, separator: str, expected: float) -> None:
    assert parse_amount(value, separator) == expected


@pytest.mark.parametrize(
    ("value", "separator", "message"),
    [
        ("12,5", ".", "not a number: '12,5'"),  # a decimal comma needs "," or "auto"
        ("1.5", ",", "not a number: '1.5'"),
        ("1,2,3", "auto", "not a number"),
        ("", ".", "not a number: ''"),  # empty text is not an amount unless the caller says so
        ("n/a", ".", "not a number: 'n/a'"),
        ("$", ".", "not a number"),
        ("12k", "auto", "not a number: '12k'"),
        ("nan", ".", "not a number"),
        ("inf", ".", "not a number"),
        ("1e999", ".", "not a finite number: '1e999'"),
        (math.nan, ".", "not a finite number"),
        (-math.inf, ".", "not a finite number"),
        (10**400, ".", "not a finite number"),
        (True, ".", "not a number: True"),
        (date(2020, 1, 1), ".", "not a number"),
        ("1", ";", "decimal_separator must be"),
    ],
)
def test_parse_amount_refuses(value: Any, separator: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        parse_amount(value, separator)


def test_no_amount() -> None:
    assert parse_amount(None) is None
    for text in ("", "  ", "n/a", "N/A", "-", "—", "None", "null"):
        assert parse_amount(text, "auto", no_amount=NO_AMOUNT) is None
    assert parse_amount("0", no_amount=NO_AMOUNT) == 0.0


# --- dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-01-05", date(2021, 1, 5)),
        ("2021/1/5", date(2021, 1, 5)),
        ("2017-11-21T00:00:00.000Z", date(2017, 11, 21)),
        ("2021-01-01T23:30:00-05:00", date(2021, 1, 1)),  # the date as written: no time-zone shift
        (" 2021-01-05 10:00 ", date(2021, 1, 5)),
        ("05/01/2021", date(2021, 1, 5)),  # day first
        ("5.1.2021", date(2021, 1, 5)),
        ("05-01-2021", date(2021, 1, 5)),
        (datetime(2021, 1, 5, 23, 59), date(2021, 1, 5)),
        (date(2021, 1, 5), date(2021, 1, 5)),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_date(value: Any, expected: date | None) -> None:
    assert parse_date(value) == expected


def test_excel_serial_numbers_only_when_asked() -> None:
    assert parse_date(44197, excel=True) == date(2021, 1, 1)
    assert parse_date(44197.75, excel=True) == date(2021, 1, 1)
    for serial in (0, -1, 2958466, math.nan):
        with pytest.raises(ValueError, match="not a date"):
            parse_date(serial, excel=True)
    with pytest.raises(ValueError, match="not a date: 44197"):
        parse_date(44197)  # a number in JSON or text is no date


def test_month_first_only_as_a_fallback() -> None:
    assert parse_date("01/15/2024", month_first_fallback=True) == date(2024, 1, 15)
    assert parse_date("02/03/2024", month_first_fallback=True) == date(2024, 3, 2)  # day first when possible
    with pytest.raises(ValueError, match="month must be in 1..12"):
        parse_date("01/15/2024")


@pytest.mark.parametrize("value", ["31/02/2019", "2019-02-30", "2021-13-01", "next week", "2021-01-01xyz", True])
def test_bad_dates_raise(value: Any) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_date(value)


def test_date_format() -> None:
    assert parse_date("03/31/2024", "%m/%d/%Y") == date(2024, 3, 31)
    with pytest.raises(ValueError, match="not a date in the format '%m/%d/%Y': '2024-03-31'"):
        parse_date("2024-03-31", "%m/%d/%Y")
    assert parse_date(datetime(2024, 3, 31), "%m/%d/%Y") == date(2024, 3, 31)  # date cells as they are


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-03-04", date(2020, 3, 4)),
        (" 2020-03-04T10:00:00Z ", date(2020, 3, 4)),
        ("2020-03-04 and more", date(2020, 3, 4)),
        ("2020-02-30", None),
        ("1899-12-31", None),  # outside the table's years
        ("2101-01-01", None),
        ("04/03/2020", None),  # strict: no other form
        ("2020-3-4", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_iso_date(text: str | None, expected: date | None) -> None:
    assert parse_iso_date(text) == expected


# --- workbooks -------------------------------------------------------------------------------------


def _workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """One list per workbook textfiles opens, holding a 1 for each close() call."""
    opened: list[list[int]] = []
    real = openpyxl.load_workbook

    def spy(*args: Any, **kwargs: Any) -> Any:
        wb = real(*args, **kwargs)
        assert kwargs == {"read_only": True, "data_only": True}
        calls: list[int] = []
        close = wb.close
        wb.close = lambda: (calls.append(1), close())[1]
        opened.append(calls)
        return wb

    monkeypatch.setattr(textfiles.openpyxl, "load_workbook", spy)
    return opened


def test_open_workbook_numbers_rows_and_closes(tmp_path: Path, closes: list[list[int]]) -> None:
    sheets = {"Notes": [["read me"]], "Data": [["Title"], ["Id", "Amount"], ["G-1", 5]]}
    path = _workbook(tmp_path / "book.xlsx", sheets)
    with open_workbook(path) as wb:
        assert [ws.title for ws in wb.worksheets] == ["Notes", "Data"]
        assert list(sheet_rows(wb["Data"], min_row=2)) == [(2, ("Id", "Amount")), (3, ("G-1", 5))]
        assert list(sheet_rows(wb["Data"], max_row=1)) == [(1, ("Title", None))]  # padded to the sheet's width
        assert closes == [[]]
    assert closes == [[1]]


def test_open_workbook_closes_when_the_reader_fails(tmp_path: Path, closes: list[list[int]]) -> None:
    path = _workbook(tmp_path / "book.xlsx", {"Data": [["Id"], ["G-1"]]})
    with pytest.raises(RuntimeError), open_workbook(path) as wb:
        next(sheet_rows(wb.worksheets[0]))
        raise RuntimeError("a loader gives up half-way")
    assert closes == [[1]]


def test_an_unreadable_workbook(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="not a readable XLSX workbook"), open_workbook(path):
        pass
    assert not xlsx_has_row(path, lambda values: True, 10)


def test_xlsx_has_row_stops_early_and_closes(tmp_path: Path, closes: list[list[int]]) -> None:
    path = _workbook(tmp_path / "book.xlsx", {"Notes": [["x"]], "Data": [["title"], ["#org", "#adm1"]]})
    seen: list[tuple[Any, ...]] = []

    def wanted(values: Any) -> bool:
        seen.append(tuple(values))
        return "#org" in values

    assert xlsx_has_row(path, wanted, 5)
    assert seen == [("x",), ("title", None), ("#org", "#adm1")]
    assert not xlsx_has_row(path, wanted, 1)  # only the first row of each sheet
    assert closes == [[1], [1]]


def test_reset_dimensions_reads_past_a_wrong_sheet_size(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "book.xlsx", {"Data": [["Id", "Amount"], ["G-1", 5], ["G-2"]]})
    # Some writers state the size as "A1": read-only mode then stops after the first cell.
    with zipfile.ZipFile(path) as zin:
        parts = {name: zin.read(name) for name in zin.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    parts[sheet] = parts[sheet].replace(b'<dimension ref="A1:B3"/>', b'<dimension ref="A1"/>')
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in parts.items():
            zout.writestr(name, data)
    with open_workbook(path) as wb:
        assert list(sheet_rows(wb.worksheets[0])) == [(1, ("Id",))]
        assert list(sheet_rows(wb.worksheets[0], reset_dimensions=True)) == [
            (1, ("Id", "Amount")), (2, ("G-1", 5)), (3, ("G-2",)),  # each row as long as it is
        ]
