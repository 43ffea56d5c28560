"""Property-based tests (hypothesis) of the pure parsers, detection and every loader's ``read``.

The rule they check: a parser gives a value or its own clear error (``ValueError`` for a cell,
``LoadError`` for a file), never another exception. Mutated files come from tests/hostile
(fuzzing.py); benchmarks/fuzz_parsers.py runs the same mutations for a set time.
"""

from __future__ import annotations

import codecs
import math
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_sources import registry, textfiles
from data_sources.errors import FormatNotRecognised
from data_sources.textfiles import cell_text, decode_head, open_text, parse_amount, parse_date, sniff_encoding
from tests.hostile import fuzzing

# Bounded so the whole file runs in well under 30 s; no example database is written into the repo.
FAST = settings(max_examples=200, deadline=None, database=None)
FILES = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet="0123456789.,' -+eE$€£\u00a0\u202fUSDusd", max_size=25),
    st.dates(),
    st.datetimes(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
TARGETS = fuzzing.targets()


# --------------------------------------------------------------------------- cells


@FAST
@given(value=CELLS, separator=st.sampled_from([".", ",", "auto"]), no_amount=st.booleans())
def test_parse_amount_gives_a_finite_number_none_or_value_error(value: Any, separator: str, no_amount: bool) -> None:
    try:
        number = parse_amount(value, separator, no_amount=textfiles.NO_AMOUNT if no_amount else ())
    except ValueError as exc:
        assert str(exc)
        return
    assert number is None or (isinstance(number, float) and math.isfinite(number))


@FAST
@given(number=st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_parse_amount_reads_what_people_write(number: float) -> None:
    cents = round(number, 2)
    assert parse_amount(repr(number)) == number
    assert parse_amount(f"{cents:,.2f}") == pytest.approx(cents)  # 1,234,567.89
    european = f"{cents:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")  # 1.234.567,89
    assert parse_amount(european, ",") == pytest.approx(cents)
    swiss = f"{cents:,.2f}".replace(",", "'")  # 1'234'567.89
    assert parse_amount(swiss) == pytest.approx(cents)
    assert parse_amount(f"£ {cents:,.2f}", "auto") == pytest.approx(cents)


@FAST
@given(value=CELLS, excel=st.booleans(), month_first=st.booleans())
def test_parse_date_gives_a_date_none_or_value_error(value: Any, excel: bool, month_first: bool) -> None:
    try:
        found = parse_date(value, excel=excel, month_first_fallback=month_first)
    except ValueError as exc:
        assert str(exc)
        return
    assert found is None or isinstance(found, date)


@FAST
@given(day=st.dates(min_value=date(1900, 3, 1), max_value=date(9999, 12, 31)))
def test_parse_date_round_trips(day: date) -> None:
    assert parse_date(day.isoformat()) == day
    assert parse_date(f"{day.day:02d}/{day.month:02d}/{day.year}") == day
    assert parse_date(datetime(day.year, day.month, day.day, 13, 5)) == day
    serial = (day - date(1899, 12, 30)).days
    assert parse_date(serial, excel=True) == day
    assert parse_date(serial + 0.75, excel=True) == day  # a time of day
    assert parse_date(day + timedelta(0)) == day


@FAST
@given(value=CELLS)
def test_cell_text_is_stripped_text_or_none(value: Any) -> None:
    text = cell_text(value)
    assert text is None or (isinstance(text, str) and text == text.strip() and text)


# --------------------------------------------------------------------------- encodings


ENCODED = st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"])


@FAST
@given(text=st.text(max_size=200), encoding=ENCODED)
def test_sniff_encoding_and_open_text_round_trip(text: str, encoding: str) -> None:
    if encoding == "cp1252":
        try:
            data = text.encode("cp1252")
        except UnicodeEncodeError:
            return
    elif encoding.startswith("utf-16"):
        data = (codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE) + text.encode(encoding)
    else:
        data = text.encode(encoding)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "text.csv"
        path.write_bytes(data)
        sniffed = sniff_encoding(path)
        with open_text(path) as fh:
            read = fh.read()
    if encoding == "cp1252" and sniffed == "utf-8":
        assert data.decode("utf-8") == read  # the same bytes are valid UTF-8 too: that reading wins
    else:
        assert read == text.removeprefix("\ufeff") if encoding == "utf-8-sig" else read == text


@FAST
@given(head=st.binary(max_size=2048), utf16=st.booleans())
def test_decode_head_never_raises(head: bytes, utf16: bool) -> None:
    assert isinstance(decode_head(head, utf16_without_bom=utf16), str)


# --------------------------------------------------------------------------- detection


PREFIXES = st.sampled_from([
    b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"<", b"<?xml ", b"<iati-activities", b"{",
    b'{"grants": [', b'{"data": {"flows": [', b"[", b"PK\x03\x04", b"PK\x03\x04xl/", textfiles.XLS_MAGIC,
    b"#org,#sector\n", b"Identifier,Amount Awarded,Funding Org:Name\r", b"id,amountUSD,destLocations\r",
    b"DonorName|USD_Commitment\r\n",
])  # fmt: skip


@FAST
@given(prefix=PREFIXES, rest=st.binary(max_size=4096))
def test_every_detector_answers_true_or_false_for_any_bytes(prefix: bytes, rest: bytes) -> None:
    head = prefix + rest
    for loader in registry.LOADERS.values():
        assert loader.detect(head) in (True, False)


@FILES
@given(prefix=PREFIXES, rest=st.binary(max_size=4096))
def test_detect_format_recognises_or_says_what_it_expected(tmp_path: Path, prefix: bytes, rest: bytes) -> None:
    path = tmp_path / "any.dat"
    path.write_bytes(prefix + rest)
    try:
        loader = registry.detect_format(path)
    except FormatNotRecognised as exc:
        assert str(path) in str(exc)
        return
    assert loader in registry.LOADERS.values()


# --------------------------------------------------------------------------- mutated files

OPERATIONS = st.lists(
    st.tuples(st.sampled_from(fuzzing.OPERATIONS), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("name", list(TARGETS))
@FILES
@given(operations=OPERATIONS, detect=st.booleans())
def test_read_gives_records_or_a_load_error(tmp_path: Path, name: str, operations: list, detect: bool) -> None:
    target = TARGETS[name]
    path = tmp_path / f"mutated{target.suffix}"
    path.write_bytes(fuzzing.mutated(target, operations))
    # Crash (any other exception, or a LoadError that does not name the file) fails the test.
    fuzzing.outcome(target, path, detect=detect)


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_is_valid_before_mutation(tmp_path: Path, name: str) -> None:
    target = TARGETS[name]
    path = tmp_path / f"valid{target.suffix}"
    path.write_bytes(target.data)
    assert fuzzing.outcome(target, path) == "records"
    assert fuzzing.outcome(target, path, detect=True) == "records"
