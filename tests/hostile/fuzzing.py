"""Mutated files for every loader, and the one rule they must keep: a clear error or records, never a crash.

Shared by tests/test_fuzz.py (hypothesis) and benchmarks/fuzz_parsers.py (a timed random run).
A *target* is a valid sample (tests/hostile/samples.py) and the loader that reads it; a mutation
flips, inserts, deletes, duplicates or truncates bytes. Workbooks are mutated inside: the sheet XML
is changed and the zip written again, so that openpyxl gets past the zip and parses the damage.
"""

from __future__ import annotations

import io
import random
import tempfile
import traceback
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_sources import registry
from data_sources.enrich import canonical_rows
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord
from tests.hostile import samples

# Bytes that mean something to one parser or another.
TOKENS: tuple[bytes, ...] = (
    b'"', b"'", b",", b";", b"\t", b"|", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xef\xbb\xbf",
    b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b"&#x110000;", b"<!DOCTYPE x>", b"<![CDATA[", b"]]>",
    b"<!--", b"-->", b"{", b"}", b"[", b"]", b":", b"null", b"true", b"NaN", b"Infinity", b"-Infinity",
    b"1e999", b"-0", b"9" * 40, b"1" * 400, b"1" * 5000, b"1e308", b"-1.7976931348623157e308",
    b"#", b"#org", b"+", b"=", b"=1+1", b"\\", b"\\u0000", b"\\ud800",
    b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b" ", b"\xa0", b"1.234,56", b"1'234.56", b"one thousand",
    b"2023-02-30", b"99/99/9999", b"31/12/1899", b"0001-01-01", b"-1", b"0",
)  # fmt: skip
OPERATIONS = ("flip", "insert", "token", "delete", "duplicate", "truncate")


@dataclass(frozen=True)
class Target:
    """One loader and a valid file it reads, to be mutated."""

    name: str
    loader: str  # a registry name
    suffix: str
    data: bytes
    options: dict[str, Any] = field(default_factory=dict)
    xlsx_part: str | None = None  # mutate this part of the workbook, not the zip bytes


def targets() -> dict[str, Target]:
    """Every sample (UTF-8, and the text ones in UTF-16 too), plus 360Giving and 3W workbooks."""
    found: dict[str, Target] = {}
    for sample in samples.SAMPLES.values():
        found[sample.name] = Target(sample.name, sample.loader, sample.suffix, samples.encode(sample), sample.options)
    found["crs_utf16"] = Target(
        "crs_utf16", "oecd_crs", ".csv", samples.encode(samples.SAMPLES["crs_csv"], "utf-16-le-bom")
    )
    giving = [samples.GIVING_HEADER, *samples.GIVING_ROWS]
    found["giving_xlsx"] = Target("giving_xlsx", "360giving", ".xlsx", _xlsx({"Grants": giving}),
                                  xlsx_part="xl/worksheets/sheet1.xml")
    found["hdx_xlsx"] = Target("hdx_xlsx", "hdx_3w", ".xlsx", _xlsx({"3W": samples.HDX_ROWS}),
                               xlsx_part="xl/worksheets/sheet1.xml")
    table_rows = [samples.TABLE_HEADER, *samples.TABLE_ROWS]
    found["table_xlsx"] = Target("table_xlsx", "table", ".xlsx", _xlsx({"Grants": table_rows}),
                                 {"mapping": samples.TABLE_MAPPING}, xlsx_part="xl/worksheets/sheet1.xml")
    return found


def _xlsx(sheets: dict[str, list[list[Any]]]) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = samples.write_xlsx(Path(folder) / "book.xlsx", sheets)
        return path.read_bytes()


# --------------------------------------------------------------------------- mutations

Operation = tuple[str, float, bytes]  # (kind, where in the data 0..1, bytes it inserts)


def apply(data: bytes, operations: Sequence[Operation]) -> bytes:
    """``data`` with each operation applied in turn (deterministic, so hypothesis can shrink)."""
    for kind, where, payload in operations:
        at = min(int(where * len(data)), len(data))
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (payload[0] if payload else 0xFF) or 1]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + payload + data[at:]
        elif kind == "token":
            token = TOKENS[(payload[0] if payload else 0) % len(TOKENS)]
            data = data[:at] + token + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + 1 + (payload[0] % 16 if payload else 0) :]
        elif kind == "duplicate":
            size = 1 + (payload[0] if payload else 7) * 4
            data = data[:at] + data[at : at + size] * 2 + data[at + size :]
        elif kind == "truncate":
            data = data[:at]
    return data


def random_operations(rng: random.Random) -> list[Operation]:
    count = rng.choice((1, 1, 1, 2, 2, 3, 5, 8))
    return [
        (rng.choice(OPERATIONS), rng.random(), bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))))
        for _ in range(count)
    ]


def mutated(target: Target, operations: Sequence[Operation]) -> bytes:
    """The target's file with the operations applied (inside the workbook for XLSX targets)."""
    if target.xlsx_part is None:
        return apply(target.data, operations)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(target.data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == target.xlsx_part:
                content = apply(content, operations)
            dest.writestr(info.filename, content)
    return out.getvalue()


# --------------------------------------------------------------------------- running


class Crash(Exception):
    """A loader raised something other than LoadError, or yielded something other than a record."""


def outcome(target: Target, path: Path, *, detect: bool = False, enrich: bool = True) -> str:
    """Read ``path`` and say how it went: ``records``, ``rejections`` (only), ``nothing`` or ``LoadError``.

    ``detect``: choose the loader by ``registry.detect_format`` (``FormatNotRecognised`` counts as
    ``unrecognised``). ``enrich``: also turn each record into canonical rows, as a load does.
    Raises ``Crash`` (with the traceback) for anything else.
    """
    try:
        if detect and target.loader != "table":
            loader = registry.detect_format(path)
        else:
            loader = registry.LOADERS[target.loader]
        options = target.options if loader.NAME == target.loader else {}
        counts = {"records": 0, "rejections": 0}
        for item in loader.read(path, **options):
            if isinstance(item, SourceRecord):
                counts["records"] += 1
                if enrich:
                    list(canonical_rows(item, str(path), 1))
            elif isinstance(item, Rejection):
                counts["rejections"] += 1
                if not (item.record_id and item.field and item.reason):
                    raise Crash(f"a rejection without record, field or reason: {item!r}")
            else:
                raise Crash(f"read() yielded {type(item).__name__}: {item!r}")
    except registry.FormatNotRecognised as exc:
        _check_names_file(exc, path)
        return "unrecognised"
    except LoadError as exc:
        _check_names_file(exc, path)
        return "LoadError"
    except Crash:
        raise
    except Exception as exc:  # noqa: BLE001 - the very thing a fuzz run looks for
        raise Crash(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}") from exc
    if counts["records"]:
        return "records"
    return "rejections" if counts["rejections"] else "nothing"


def _check_names_file(exc: LoadError, path: Path) -> None:
    text = str(exc)
    # A mapping error names the mapping file first, and the data file in its message.
    if str(path) not in text and path.name not in text and "mapping" not in text:
        raise Crash(f"a LoadError that does not name the file: {text}")
