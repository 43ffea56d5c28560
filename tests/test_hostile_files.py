"""Bad files through ``loading.load_file``: every loader, every kind of damage, a clear error or correct records.

Each failing load must raise ``LoadError`` naming the file and leave the store's allocations as
they were; each rejected record must name the record and the field. Every file is made here, in
``tmp_path``, from the samples in tests/hostile/samples.py (no binary fixtures).
"""

from __future__ import annotations

import codecs
import random
import re
import resource
import shutil
import socket
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from data_sources import giving360, registry, textfiles
from data_sources.errors import FormatNotRecognised, LoadError, Rejection
from data_sources.loading import LoadResult, load_file
from data_sources.records import SourceRecord
from data_sources.store import allocations, open_store
from tests.conftest import shared_file
from tests.hostile import samples
from tests.hostile.samples import SAMPLES, Sample

TEXT_SAMPLES = list(SAMPLES)
EXPECTED_FORMATS = "expected an IATI activity XML file"


# --------------------------------------------------------------------------- helpers


def _stored(engine: Engine) -> list[tuple[Any, ...]]:
    """Everything of the allocations table that a load could change."""
    columns = [allocations.c[name] for name in ("source", "record_id", "alloc", "amount", "title", "source_file")]
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*columns).order_by(*columns[:3]))]


@pytest.fixture
def store(sqlite_engine: Engine, tmp_path: Path) -> Engine:
    """An SQLite store that already holds one file, so "nothing stored" means "unchanged"."""
    base = tmp_path / "base"
    base.mkdir()
    path = base / "baseline.csv"
    rows = [samples.GIVING_HEADER, ["BASE-1", "Baseline", "GBP", "10", "2020-01-01", "", "", "GB-CHC-9", "F", "UK"]]
    path.write_text("".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    assert load_file(sqlite_engine, path).rows_stored == 1
    return sqlite_engine


def _fmt(sample: Sample) -> str:
    return "table" if sample.loader == "table" else "auto"


def _options(sample: Sample, folder: Path) -> dict[str, Any] | None:
    return {"mapping": samples.write_mapping(folder)} if sample.loader == "table" else None


def _load(engine: Engine, path: Path, sample: Sample, fmt: str | None = None) -> LoadResult:
    return load_file(engine, path, fmt or _fmt(sample), options=_options(sample, path.parent))


def _fails(engine: Engine, path: Path, match: str, fmt: str = "auto", options: dict | None = None) -> LoadError:
    """The load fails with a LoadError naming the file whose message matches, and stores nothing."""
    before = _stored(engine)
    with pytest.raises(LoadError) as info:
        load_file(engine, path, fmt, options=options)
    message = str(info.value)
    assert str(path) in message, message
    assert re.search(match, message), message
    assert _stored(engine) == before
    return info.value


def _check_rejections(result: LoadResult) -> None:
    for rejection in result.rejections:
        assert rejection.record_id and rejection.field and rejection.reason, rejection


def _records(sample: Sample, path: Path) -> list[SourceRecord | Rejection]:
    return list(registry.LOADERS[sample.loader].read(path, **sample.options))


def _key(record: SourceRecord) -> tuple[Any, ...]:
    return (
        record.record_id, record.flow_type, record.amount, record.currency, record.year, record.date,
        record.funder_name, record.recipient_name, record.title, record.description,
        tuple((p.country, p.admin1_name, p.admin1_pcode) for p in record.places),
    )  # fmt: skip


def _keys(items: list[SourceRecord | Rejection]) -> list[tuple[Any, ...]]:
    assert not [i for i in items if isinstance(i, Rejection)]
    return [_key(i) for i in items if isinstance(i, SourceRecord)]


# --------------------------------------------------------------------------- detection never crashes


def test_the_natural_earth_dbf_is_not_recognised_instead_of_crashing(tmp_path: Path) -> None:
    """The known bug: a bare "\\r" in the head made giving360.detect and fts.detect raise csv.Error."""
    dbf = shared_file("gazetteer", "naturalearth_cities.dbf")
    with pytest.raises(FormatNotRecognised, match=EXPECTED_FORMATS) as info:
        registry.detect_format(dbf)
    assert str(dbf) in str(info.value)
    head = dbf.read_bytes()[: registry.HEAD_BYTES]
    for loader in registry.LOADERS.values():
        assert loader.detect(head) is False
    wrongly_named = tmp_path / "cities.csv"
    shutil.copy(dbf, wrongly_named)
    with pytest.raises(FormatNotRecognised, match=EXPECTED_FORMATS):
        registry.detect_format(wrongly_named)


def test_a_detector_that_raises_is_taken_as_not_that_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(head: bytes) -> bool:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(giving360, "detect", broken)
    path = samples.write(tmp_path, SAMPLES["fts_csv"])
    with caplog.at_level("WARNING", logger="data_sources.registry"):
        assert registry.detect_format(path).NAME == "ocha_fts"
    assert "360giving" in caplog.text and "detector bug" in caplog.text


# --------------------------------------------------------------------------- empty and whitespace


@pytest.mark.parametrize(
    "content", [b"", b" \n\t\r\n  \r", codecs.BOM_UTF8 + b"\r\n\r\n"], ids=["empty", "blank", "bom-and-blank"]
)
@pytest.mark.parametrize("name", TEXT_SAMPLES)
def test_empty_files(store: Engine, tmp_path: Path, name: str, content: bytes) -> None:
    sample = SAMPLES[name]
    path = tmp_path / f"nothing{sample.suffix}"
    path.write_bytes(content)
    options = _options(sample, tmp_path)
    if sample.loader != "table":
        _fails(store, path, "the file is empty|format not recognised", "auto")
    # Named explicitly, every loader says so itself (IATI: no XML element).
    _fails(store, path, "empty", sample.loader, options)


# --------------------------------------------------------------------------- truncated


def _cut_points(sample: Sample, data: bytes) -> dict[str, int]:
    """Where to cut a sample: the middle of a tag, a string, a record, a quoted field..."""
    text = data.decode("utf-8")

    def at(marker: str, offset: int) -> int:
        return len(text[: text.index(marker) + offset].encode("utf-8"))

    if sample.is_xml or sample.suffix == ".json":
        points = {"quarter": len(data) // 4, "half": len(data) // 2, "last-character": len(data.rstrip()) - 1}
        if sample.is_xml:
            points["in-a-tag"] = at("<transaction-type", 8)
            points["in-an-attribute"] = at('iso-date="2023-01-15"', 13)
            points["before-the-root-ends"] = at("</iati-activities>", 4)
        else:
            points["in-a-string"] = at('"title"' if '"title"' in text else '"description"', 16)
            points["in-a-number"] = at('"amountUSD"' if "amountUSD" in text else '"amountAwarded"', 15)
        return points
    lines = text.split("\n")
    titles = 2 if sample.loader == "hdx_3w" else 1  # a 3W has a hashtag row under its titles
    header, first = sum(len(line) + 1 for line in lines[:titles]), len(lines[titles]) + 1
    points = {
        "in-the-header": len(text[: header // 2].encode("utf-8")),
        "in-a-record": len(text[: header + first // 3].encode("utf-8")),
        "at-a-line-end": len(text[: header + first].encode("utf-8")),
        "only-the-last-line-break": len(data) - 1,
    }
    if '"' in text:
        points["in-a-quoted-field"] = at('"', 3)
    return points


TRUNCATIONS = [
    (name, point)
    for name in TEXT_SAMPLES
    for point in _cut_points(SAMPLES[name], samples.encode(SAMPLES[name]))
]


@pytest.mark.parametrize(("name", "point"), TRUNCATIONS, ids=[f"{n}-{p}" for n, p in TRUNCATIONS])
def test_truncated_files(store: Engine, tmp_path: Path, name: str, point: str) -> None:
    sample = SAMPLES[name]
    data = samples.encode(sample)
    full = {_key(r) for r in _records(sample, samples.write(tmp_path, sample, stem="full"))}
    cut = data[: _cut_points(sample, data)[point]]
    path = tmp_path / f"cut{sample.suffix}"
    path.write_bytes(cut)
    if sample.is_xml or sample.suffix == ".json":
        # A document cut anywhere is invalid: the whole file is refused, nothing of it stored.
        _fails(store, path, r"truncated|not valid JSON|empty|not recognised", _fmt(sample), _options(sample, tmp_path))
        return
    before = _stored(store)
    try:
        result = _load(store, path, sample)
    except LoadError as exc:  # e.g. cut in the header: not recognised, or no CRS amount column
        assert str(path) in str(exc)
        assert _stored(store) == before
        return
    _check_rejections(result)
    # What a cut file gives is a part of what the whole file gives, never a record with cut values.
    items = _records(sample, path)
    got = {_key(r) for r in items if isinstance(r, SourceRecord)}
    assert got <= full, got - full
    if point in ("in-a-record", "in-a-quoted-field"):
        # The file ends in the middle of a data row: that row is rejected, naming the record and a column.
        [cut_row] = [r for r in result.rejections if r.reason.endswith("truncated?")]
        assert cut_row.record_id and cut_row.field
    if point in ("at-a-line-end", "only-the-last-line-break"):
        complete = result.records_read >= 1 if point == "at-a-line-end" else result.records_read == sample.records
        assert complete and not result.rejections, result


def test_truncated_workbook(store: Engine, tmp_path: Path) -> None:
    whole = samples.write_xlsx(tmp_path / "whole.xlsx", {"Grants": [samples.GIVING_HEADER, *samples.GIVING_ROWS]})
    data = whole.read_bytes()
    for n, size in enumerate((len(data) // 3, len(data) // 2, len(data) - 30)):
        path = tmp_path / f"cut{n}.xlsx"
        path.write_bytes(data[:size])
        _fails(store, path, "not a readable XLSX workbook|format not recognised|zip")
        _fails(store, path, "not a readable XLSX workbook", "360giving")


# --------------------------------------------------------------------------- wrongly labelled


@pytest.mark.parametrize("suffix", [".csv", ".xml", ".json", ".xlsx", ".txt"])
def test_random_bytes_are_not_recognised(store: Engine, tmp_path: Path, suffix: str) -> None:
    rng = random.Random(suffix)
    path = tmp_path / f"random{suffix}"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(8192)) + b"\r\x00\r\n\xff")
    error = _fails(store, path, EXPECTED_FORMATS)
    assert isinstance(error, FormatNotRecognised)
    # Named explicitly, each loader refuses it with a LoadError of its own, never another exception.
    for name in registry.LOADERS:
        options = {"mapping": samples.write_mapping(tmp_path)} if name == "table" else None
        _fails(store, path, ".", name, options)


def test_a_zip_that_is_no_workbook(store: Engine, tmp_path: Path) -> None:
    path = tmp_path / "grants.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/readme.txt", "not a workbook")
    _fails(store, path, "not a readable XLSX workbook")
    _fails(store, path, "not a readable XLSX workbook", "hdx_3w")


@pytest.mark.parametrize("name", ["giving_csv", "fts_json", "iati"])
def test_a_file_of_one_format_named_as_another(store: Engine, tmp_path: Path, name: str) -> None:
    """Detection reads content, not names: a CSV called .xml loads as what it is."""
    sample = SAMPLES[name]
    path = tmp_path / f"mislabelled{'.xml' if sample.suffix != '.xml' else '.csv'}"
    path.write_bytes(samples.encode(sample))
    result = load_file(store, path)
    assert result.format == sample.loader and result.records_read == sample.records


# --------------------------------------------------------------------------- encodings and line endings

ENCODINGS = ["utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "latin-1", "cp1252"]
NEWLINES = {"lf": "\n", "crlf": "\r\n", "cr": "\r", "mixed": "mixed"}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", TEXT_SAMPLES)
def test_encodings_and_line_endings_give_the_same_records(tmp_path: Path, name: str, encoding: str) -> None:
    sample = SAMPLES[name]
    reference = _keys(_records(sample, samples.write(tmp_path, sample, stem="reference")))
    assert len(reference) == sample.records
    for label, newline in NEWLINES.items():
        path = samples.write(tmp_path, sample, encoding, newline, stem=f"{encoding}-{label}")
        assert registry.detect_format(path, _fmt(sample)).NAME == sample.loader, label
        assert _keys(_records(sample, path)) == reference, label
    # And through a load, into the store.
    engine = open_store(f"sqlite:///{tmp_path / 'variant.sqlite'}")
    try:
        path = samples.write(tmp_path, sample, encoding, "mixed", stem="loaded")
        result = _load(engine, path, sample)
        assert result.status == "succeeded" and result.records_read == sample.records and not result.rejections
        stored_ids = {row[1] for row in _stored(engine)}
        assert stored_ids == {key[0] for key in reference}
    finally:
        engine.dispose()


def test_xml_in_latin_1_needs_its_declaration(store: Engine, tmp_path: Path) -> None:
    """XML without an encoding declaration is UTF-8 by definition: Latin-1 bytes are then refused."""
    path = tmp_path / "latin.xml"
    path.write_bytes(samples.IATI.replace('encoding="UTF-8"', "").encode("latin-1", errors="xmlcharrefreplace"))
    _fails(store, path, r"malformed or truncated XML at line \d+")
    path.write_bytes(samples.encode(SAMPLES["iati"], "latin-1"))
    assert load_file(store, path).records_read == SAMPLES["iati"].records


# --------------------------------------------------------------------------- huge but bounded


class _Bounds:
    """Wall time, peak Python allocation (tracemalloc) and growth of the process's peak RSS."""

    def __enter__(self) -> _Bounds:
        self.rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
        self.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        self.rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss) / 1024

    def check(self, seconds: float, megabytes: float) -> None:
        assert self.seconds < seconds, f"took {self.seconds:.1f} s"
        assert self.peak_mb < megabytes, f"{self.peak_mb:.0f} MB allocated at the peak"
        assert self.rss_growth_mb < megabytes, f"peak RSS grew by {self.rss_growth_mb:.0f} MB"


CSV_SAMPLES = [name for name in TEXT_SAMPLES if SAMPLES[name].suffix == ".csv"]


@pytest.mark.parametrize("shape", ["one-field", "many-fields"])
@pytest.mark.parametrize("name", CSV_SAMPLES)
def test_a_50_mb_line_without_a_line_break(store: Engine, tmp_path: Path, name: str, shape: str) -> None:
    """Before: 3.4 GB and 25-35 s for 50 MB of "ab,ab,..." (every cell held at once); now a clear error."""
    sample = SAMPLES[name]
    path = samples.write(tmp_path, sample, stem="huge")
    filler = b"x" * (50 << 20) if shape == "one-field" else b"ab," * ((50 << 20) // 3)
    with open(path, "ab") as fh:
        fh.write(filler)
    with _Bounds() as bounds:
        _fails(store, path, r"line \d+ is longer than [\d,]+ characters", _fmt(sample), _options(sample, tmp_path))
    bounds.check(seconds=20, megabytes=300)


def test_a_20_mb_xml_text_node(store: Engine, tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    path.write_text(samples.IATI.replace("Santé à Mopti", "x" * (20 << 20)), encoding="utf-8")
    with _Bounds() as bounds:
        _fails(store, path, "safety limits")
    bounds.check(seconds=20, megabytes=300)


@pytest.mark.parametrize("name", ["giving_json", "fts_json"])
def test_a_json_with_one_30_mb_string_loads(store: Engine, tmp_path: Path, name: str) -> None:
    sample = SAMPLES[name]
    text = sample.text.replace('"Crèche à Lyon"', '"Crèche ' + "x" * (30 << 20) + '"')
    text = text.replace('"Eau et hygiène"', '"Eau ' + "x" * (30 << 20) + '"')
    path = tmp_path / f"huge{sample.suffix}"
    path.write_text(text, encoding="utf-8")
    with _Bounds() as bounds:
        result = load_file(store, path)
    assert result.status == "succeeded" and result.records_read == sample.records
    bounds.check(seconds=20, megabytes=500)


@pytest.mark.parametrize("name", ["giving_json", "fts_json"])
def test_json_nested_too_deeply(store: Engine, tmp_path: Path, name: str) -> None:
    """json.loads recurses per level: 100,000 brackets raised RecursionError, a crash."""
    path = tmp_path / f"deep{SAMPLES[name].suffix}"
    key = "grants" if name == "giving_json" else "flows"
    inner = f'"{key}": ' + "[" * 100_000 + "]" * 100_000
    path.write_text("{" + (inner if key == "grants" else '"data": {' + inner + "}") + "}")
    _fails(store, path, "nested too deeply", SAMPLES[name].loader)


LONG_PLACES = {"long-name": "Kenya " * 4000, "long-number": "1" * 400}


def _place_file(name: str, place: str, folder: Path) -> tuple[Path, str, dict | None]:
    """A one-record file of loader ``name`` whose country (or place name) is ``place``."""
    if name == "360giving":
        rows = [samples.GIVING_HEADER, ["G-1", "t", "GBP", "5", "2023-01-01", "", "", "GB-CHC-9", "F", place]]
        return _write(folder / "g.csv", _csv_text(rows)), "auto", None
    if name == "iati":
        return _write(folder / "a.xml", samples.IATI.replace('<recipient-country code="ML"/>',
                                                              f'<recipient-country code="{place}"/>')), "auto", None
    if name == "ocha_fts":
        row = ["2020-02-01", "d", "5", "Donor", "", "NGO", "", "", place, "2020", "2020", "paid", "", "", "71"]
        return _write(folder / "f.csv", _csv_text([samples.FTS_HEADER, row])), "auto", None
    if name == "oecd_crs":
        row = ["2021", "4", "France", "C1", place, "14030", "Water", "t", "1", ""]
        return _write(folder / "c.csv", _csv_text([samples.CRS_HEADER, row])), "auto", None
    if name == "hdx_3w":
        rows = [["Org", "Country", "Value"], ["#org+name", "#country+name", "#value+usd"], ["O", place, "5"]]
        return _write(folder / "h.csv", _csv_text(rows)), "auto", None
    rows = [samples.TABLE_HEADER, ["T-1", "F", "5", "EUR", "01/01/2023", place, "t"]]
    return _write(folder / "t.csv", _csv_text(rows)), "table", {"mapping": samples.write_mapping(folder)}


@pytest.mark.parametrize("kind", list(LONG_PLACES))
@pytest.mark.parametrize("name", [n for n in registry.LOADERS])
def test_a_country_of_20000_characters_or_400_digits(store: Engine, tmp_path: Path, name: str, kind: str) -> None:
    """Country matching is quadratic in the text's length (20,000 characters: 50 s), and to_iso3
    read 400 digits as a numeric code (OverflowError): such text is no country, and loads quickly."""
    path, fmt, options = _place_file(name, LONG_PLACES[kind], tmp_path)
    started = time.monotonic()
    result = load_file(store, path, fmt, options=options)
    assert time.monotonic() - started < 5
    assert result.status == "succeeded" and result.records_read >= 1
    _check_rejections(result)


# --------------------------------------------------------------------------- hostile XML


def _iati_with(prolog: str, title: str = "Santé à Mopti") -> str:
    return samples.IATI.replace('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0"?>' + prolog).replace(
        "Santé à Mopti", title
    )


def _everything_stored(tmp_path: Path) -> bytes:
    """The store's files as bytes (SQLite database and write-ahead log), to look for leaked text."""
    return b"".join(p.read_bytes() for p in tmp_path.glob("store.sqlite*"))


def test_an_external_entity_is_never_read(store: Engine, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for target in (secret.as_uri(), "file:///etc/passwd"):
        path = tmp_path / "xxe.xml"
        path.write_text(_iati_with(f'<!DOCTYPE iati-activities [<!ENTITY x SYSTEM "{target}">]>', "&x;"))
        _fails(store, path, r"refused: the file has a document type declaration")
        _fails(store, path, r"refused: the file has a document type declaration", "iati")
    stored = _everything_stored(tmp_path)
    assert b"TOP-SECRET" not in stored and b"root:" not in stored


def test_billion_laughs_is_refused_quickly(store: Engine, tmp_path: Path) -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    path = tmp_path / "laughs.xml"
    path.write_text(_iati_with(f"<!DOCTYPE iati-activities [{entities}]>", "&lol9;"))
    with _Bounds() as bounds:
        _fails(store, path, "refused: the file has a document type declaration")
        _fails(store, path, "refused", "iati")
    bounds.check(seconds=5, megabytes=100)
    # Without a DOCTYPE there is nothing to expand: an undefined entity is malformed XML.
    path.write_text(_iati_with("", "&lol9;"))
    _fails(store, path, "malformed or truncated XML")


@pytest.fixture
def listener() -> Iterator[tuple[int, list[Any]]]:
    """A TCP listener on an ephemeral loopback port that records every connection it receives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    connections: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            connections.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join(timeout=2)
    server.close()


def test_no_network_access_for_dtds_entities_or_includes(store: Engine, tmp_path: Path, listener) -> None:
    port, connections = listener
    url = f"http://127.0.0.1:{port}"
    refused = {
        "dtd": f'<!DOCTYPE iati-activities SYSTEM "{url}/x.dtd">',
        "public-dtd": f'<!DOCTYPE iati-activities PUBLIC "-//X//DTD X//EN" "{url}/p.dtd">',
        "parameter-entity": f'<!DOCTYPE iati-activities [<!ENTITY % p SYSTEM "{url}/p.ent"> %p;]>',
        "external-entity": f'<!DOCTYPE iati-activities [<!ENTITY e SYSTEM "{url}/e.xml">]>',
    }
    for label, prolog in refused.items():
        path = tmp_path / f"{label}.xml"
        path.write_text(_iati_with(prolog, "&e;" if label == "external-entity" else "Santé"))
        _fails(store, path, "refused: the file has a document type declaration")
    # Without a DOCTYPE, references the parser never follows: the file loads, the links are ignored.
    ignored = samples.IATI.replace(
        '<iati-activities version="2.03"',
        f'<?xml-stylesheet href="{url}/s.xsl"?><iati-activities version="2.03" '
        f'xmlns:xi="http://www.w3.org/2001/XInclude" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="http://iati {url}/schema.xsd"',
    ).replace("<iati-identifier>XM-TEST-2", f'<xi:include href="{url}/inc.xml"/><iati-identifier>XM-TEST-2')
    path = tmp_path / "links.xml"
    path.write_text(ignored)
    assert load_file(store, path).records_read == SAMPLES["iati"].records
    time.sleep(0.3)  # give a stray connection time to arrive
    assert connections == []


def test_an_entity_in_a_workbook_is_never_read(store: Engine, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-XLSX")
    path = samples.write_xlsx(tmp_path / "xxe.xlsx", {"Grants": [samples.GIVING_HEADER, samples.GIVING_ROWS[0]]})
    samples.patch_xlsx(path, "xl/worksheets/sheet1.xml", {
        "<worksheet ": f'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]><worksheet ',
        "Caf&#233; in Tr&#233;guier": "&xxe;",
    })  # fmt: skip
    try:
        result = load_file(store, path)
    except LoadError as exc:
        assert str(path) in str(exc)
    else:
        assert result.status == "succeeded"
    assert b"TOP-SECRET" not in _everything_stored(tmp_path)


# --------------------------------------------------------------------------- workbooks

GIVING_ROWS = [samples.GIVING_HEADER, *(list(r) for r in samples.GIVING_ROWS)]


def _giving_xlsx(path: Path, rows: list[list[Any]] | None = None, **sheets: Any) -> Path:
    return samples.write_xlsx(path, {"Grants": rows or [list(r) for r in GIVING_ROWS]}, **sheets)


def _amounts(engine: Engine) -> dict[str, float]:
    return {row[1]: row[3] for row in _stored(engine) if row[2] == 0}


def test_a_formula_without_a_saved_value_is_rejected_naming_the_field(store: Engine, tmp_path: Path) -> None:
    rows = [list(r) for r in GIVING_ROWS]
    rows[1][3] = "=1000*2"
    path = _giving_xlsx(tmp_path / "formula.xlsx", rows)  # openpyxl saves no value for a formula
    result = load_file(store, path)
    [rejection] = result.rejections
    assert (rejection.record_id, rejection.field) == ("360G-test-1", "Amount Awarded")
    assert "=1000*2" in rejection.reason and "D2" in rejection.reason and "no saved value" in rejection.reason
    assert result.rows_stored == 2


def test_a_formula_with_a_saved_value_reads_the_value(store: Engine, tmp_path: Path) -> None:
    rows = [list(r) for r in GIVING_ROWS]
    rows[1][3] = "=1000*2"
    path = _giving_xlsx(tmp_path / "cached.xlsx", rows)
    # What Excel writes: the formula and its last result.
    samples.patch_xlsx(path, "xl/worksheets/sheet1.xml", {"<f>1000*2</f><v></v>": "<f>1000*2</f><v>2000</v>"})
    result = load_file(store, path)
    assert not result.rejections and _amounts(store)["360G-test-1"] == 2000
    # A formula whose saved result is empty text is saved: the amount is missing, not unknown.
    path = _giving_xlsx(tmp_path / "empty-result.xlsx", rows)
    samples.patch_xlsx(path, "xl/worksheets/sheet1.xml", {'<c r="D2"><f>': '<c r="D2" t="str"><f>'})
    [rejection] = [r for r in load_file(store, path).rejections if r.field != "record_id"]  # not "already stored"
    assert (rejection.record_id, rejection.field, rejection.reason) == ("360G-test-1", "Amount Awarded", "missing")


def test_formulas_in_a_table_and_a_3w(store: Engine, tmp_path: Path) -> None:
    rows = [samples.TABLE_HEADER, *(list(r) for r in samples.TABLE_ROWS)]
    rows[1][2] = "=SUM(A1:A3)"
    path = samples.write_xlsx(tmp_path / "table.xlsx", {"Grants": rows})
    result = load_file(store, path, "table", options={"mapping": samples.write_mapping(tmp_path)})
    assert [(r.record_id, r.field) for r in result.rejections] == [("hostile:T-1", "Montant")]
    hdx = [list(r) for r in samples.HDX_ROWS]
    hdx[2][4] = "=500+500"
    path = samples.write_xlsx(tmp_path / "3w.xlsx", {"3W": hdx})
    result = load_file(store, path)
    [rejection] = result.rejections
    assert (rejection.record_id, rejection.field) == ("row3", "#value+usd") and "no saved value" in rejection.reason


def test_merged_cells_are_read_as_a_person_sees_them(store: Engine, tmp_path: Path) -> None:
    import openpyxl

    rows = [list(r) for r in GIVING_ROWS]
    for row in rows:
        row.insert(2, None)  # an untitled column under a title merged across two columns
    rows[2][9] = rows[3][9] = None  # the funder is written once, merged over three rows
    path = _giving_xlsx(tmp_path / "merged.xlsx", rows)
    wb = openpyxl.load_workbook(path)
    wb["Grants"].merge_cells("B1:C1")
    wb["Grants"].merge_cells("J2:J4")
    wb.save(path)
    result = load_file(store, path)
    assert result.records_read == 3 and not result.rejections
    with store.connect() as conn:
        funders = dict(conn.execute(
            select(allocations.c.record_id, allocations.c.funder_name).where(allocations.c.source == "360giving")
        ).all())  # fmt: skip
    assert {funders[f"360G-test-{n}"] for n in (1, 2, 3)} == {"Fondation Générale"}


def test_hidden_sheets_are_not_read(store: Engine, tmp_path: Path) -> None:
    old = [samples.GIVING_HEADER, ["360G-old-1", "Old", "GBP", "5", "2010-01-01", "", "", "GB-CHC-9", "F", "UK"]]
    path = samples.write_xlsx(
        tmp_path / "both.xlsx", {"Old grants": old, "Grants": [list(r) for r in GIVING_ROWS]}, hidden=["Old grants"]
    )
    result = load_file(store, path)
    assert result.records_read == 3 and "360G-old-1" not in _amounts(store)
    only_hidden = samples.write_xlsx(tmp_path / "hidden.xlsx", {"Notes": [["read me"]], "Old grants": old},
                                     hidden=["Old grants"])
    _fails(store, only_hidden, r"hidden \('Old grants'\).*unhide")
    # The generic table reads the first visible sheet, a hidden one only when the mapping names it.
    rows = [samples.TABLE_HEADER, *samples.TABLE_ROWS]
    lookup = [samples.TABLE_HEADER, ["T-9", "Lookup", "1", "EUR", "01/01/2020", "Mali", "x"]]
    path = samples.write_xlsx(tmp_path / "table.xlsx", {"Lists": lookup, "Grants": rows}, hidden=["Lists"])
    result = load_file(store, path, "table", options={"mapping": samples.write_mapping(tmp_path)})
    assert result.records_read == 3 and "hostile:T-9" not in _amounts(store)


def test_dates_as_excel_serial_numbers(store: Engine, tmp_path: Path) -> None:
    rows = [list(r) for r in GIVING_ROWS]
    rows[1][4] = 45031  # a number-formatted date cell: 2023-04-15
    path = _giving_xlsx(tmp_path / "serial.xlsx", rows)
    load_file(store, path)
    table_rows = [samples.TABLE_HEADER, *(list(r) for r in samples.TABLE_ROWS)]
    table_rows[1][4] = 45031.0
    path = samples.write_xlsx(tmp_path / "table.xlsx", {"Grants": table_rows})
    load_file(store, path, "table", options={"mapping": samples.write_mapping(tmp_path)})
    hdx = [row + [tag] for row, tag in zip(samples.HDX_ROWS, ["Date", "#date", 45031, 45031, 45031], strict=True)]
    path = samples.write_xlsx(tmp_path / "3w.xlsx", {"3W": hdx})
    load_file(store, path)
    with store.connect() as conn:
        dates = dict(conn.execute(select(allocations.c.record_id, allocations.c.date)).all())
    assert str(dates["360G-test-1"]) == str(dates["hostile:T-1"]) == str(dates["row3"]) == "2023-04-15"


def test_an_old_xls_named_xlsx(store: Engine, tmp_path: Path) -> None:
    path = tmp_path / "grants.xlsx"
    path.write_bytes(textfiles.XLS_MAGIC + b"\xa1\xb1\x1a\xe1" + bytes(2048))
    _fails(store, path, r"old binary \.xls workbook")
    for name in ("360giving", "hdx_3w"):
        _fails(store, path, r"old binary \.xls workbooks are not read", name)
    _fails(store, path, r"old binary \.xls", "table", {"mapping": samples.write_mapping(tmp_path)})


def test_a_zip_bomb_workbook_is_refused(store: Engine, tmp_path: Path) -> None:
    path = _giving_xlsx(tmp_path / "bomb.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b"\0" * (101 << 20))
    with _Bounds() as bounds:
        _fails(store, path, "zip bomb")
        _fails(store, path, "zip bomb", "360giving")
    bounds.check(seconds=20, megabytes=300)


def test_a_row_past_excels_last_row_is_refused(store: Engine, tmp_path: Path) -> None:
    """A cell at row 2,000,000,000 made openpyxl hand out two billion empty rows: hours of work."""
    path = _giving_xlsx(tmp_path / "far.xlsx")
    far = {'<c r="A4"': '<c r="A2000000000"', '<row r="4"': '<row r="2000000000"'}
    far['ref="A1:J4"'] = 'ref="A1:J2000000000"'  # the size the sheet states, which read-only mode trusts
    samples.patch_xlsx(path, "xl/worksheets/sheet1.xml", far)
    with _Bounds() as bounds:
        _fails(store, path, "past Excel's last row")
    bounds.check(seconds=20, megabytes=300)
    # A 3W sheet is read without the stated size: the rows are counted up to Excel's last one.
    path = samples.write_xlsx(tmp_path / "far3w.xlsx", {"3W": [list(r) for r in samples.HDX_ROWS]})
    far = {'<c r="A5"': '<c r="A2000000000"', '<row r="5"': '<row r="2000000000"'}
    samples.patch_xlsx(path, "xl/worksheets/sheet1.xml", far)
    started = time.monotonic()
    _fails(store, path, "past Excel's last row")
    assert time.monotonic() - started < 20


# --------------------------------------------------------------------------- amount rules

AMOUNTS = ["-100", "0", "NaN", "inf", "Infinity", "one thousand", "1.234,56", "1 234,56", "1'234.56", "1,234.56"]
R = "rejected"
# Per loader (and separator mode): the amount each text gives, R, or None for "no record".
RULES: dict[str, list[Any]] = {
    "360giving": [-100, 0, R, R, R, R, R, R, 1234.56, 1234.56],
    "iati": [-100, 0, R, R, R, R, R, R, R, R],
    "ocha_fts": [-100, 0, R, R, R, R, R, R, R, R],
    "oecd_crs,": [-100e6, None, R, R, R, R, R, R, 1234.56e6, 1234.56e6],
    "oecd_crs;": [-100e6, None, R, R, R, R, 1234.56e6, 1234.56e6, 1234.56e6, 1234.56e6],
    "hdx_3w": [-100, 0, R, R, R, R, 1234.56, 1234.56, 1234.56, 1234.56],
    "table.": [-100, 0, R, R, R, R, R, R, 1234.56, 1234.56],
    "table,": [-100, 0, R, R, R, R, 1234.56, 1234.56, R, R],
}
FIELDS = {"360giving": "Amount Awarded", "iati": "transaction/value", "ocha_fts": "amountUSD",
          "oecd_crs": "USD_Commitment", "hdx_3w": "#value+usd", "table": "Montant"}  # fmt: skip


def _csv_text(rows: list[list[Any]], delimiter: str = ",") -> str:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _amount_file(rule: str, folder: Path) -> tuple[Path, list[str], dict | None]:
    """A file with one record per amount text, and the record ids in that order."""
    n = range(len(AMOUNTS))
    if rule == "360giving":
        rows = [samples.GIVING_HEADER] + [
            [f"G-{i}", f"amt-{i}", "GBP", a, "2023-01-01", "", "", "GB-CHC-9", "F", "UK"] for i, a in enumerate(AMOUNTS)
        ]
        return _write(folder / "g.csv", _csv_text(rows)), [f"G-{i}" for i in n], None
    if rule == "iati":
        transactions = "".join(
            f'<transaction><transaction-type code="3"/><transaction-date iso-date="2023-01-01"/><value>{a}</value>'
            "</transaction>" for a in AMOUNTS
        )
        text = ('<iati-activities version="2.03"><iati-activity default-currency="EUR"><iati-identifier>XM-AMT'
                f"</iati-identifier>{transactions}</iati-activity></iati-activities>")
        return _write(folder / "a.xml", text), [f"XM-AMT#t{i}" for i in n], None
    if rule == "ocha_fts":
        rows = [samples.FTS_HEADER] + [
            ["2020-02-01", f"amt-{i}", a, "Donor", "", "NGO", "", "", "AFG", "2020", "2020", "paid", "", "", f"7{i}"]
            for i, a in enumerate(AMOUNTS)
        ]
        return _write(folder / "f.csv", _csv_text(rows)), [f"7{i}" for i in n], None
    if rule.startswith("oecd_crs"):
        delimiter = rule[-1]
        rows = [samples.CRS_HEADER] + [
            ["2021", "4", "France", f"AMT{i}", "Mali", "14030", "Water", f"amt-{i}", a, ""]
            for i, a in enumerate(AMOUNTS)
        ]
        return _write(folder / "c.csv", _csv_text(rows, delimiter)), [f"AMT{i}-" for i in n], None
    if rule == "hdx_3w":
        rows = samples.HDX_ROWS[:2] + [["Org", "Health", "Herat", "AF21", a, f"amt-{i}"] for i, a in enumerate(AMOUNTS)]
        return _write(folder / "h.csv", _csv_text(rows)), [f"row{i + 3}" for i in n], None
    mapping = folder / "mapping.toml"
    mapping.write_text(samples.TABLE_MAPPING_TOML + f'\n[options]\ndecimal_separator = "{rule[-1]}"\n', "utf-8")
    rows = [samples.TABLE_HEADER] + [
        [f"A-{i}", "Funder", a, "EUR", "01/01/2023", "Mali", f"amt-{i}"] for i, a in enumerate(AMOUNTS)
    ]
    return _write(folder / "t.csv", _csv_text(rows)), [f"hostile:A-{i}" for i in n], {"mapping": mapping}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("rule", list(RULES))
def test_amount_rules(store: Engine, tmp_path: Path, rule: str) -> None:
    path, ids, options = _amount_file(rule, tmp_path)
    result = load_file(store, path, "table" if rule.startswith("table") else "auto", options=options)
    loader = rule.rstrip(".,;")
    stored: dict[str, float] = {}
    for _source, record_id, _alloc, amount, _title, source_file in _stored(store):
        if source_file == str(path.resolve()):
            stored[record_id] = stored.get(record_id, 0.0) + amount
    for text, record_id, expected in zip(AMOUNTS, ids, RULES[rule], strict=True):
        found = [k for k in stored if k.startswith(record_id) and (loader != "iati" or k == record_id)]
        rejected = [r for r in result.rejections if r.record_id.startswith(record_id)]
        if loader == "iati":
            rejected = [r for r in rejected if r.record_id == record_id]
        if expected is R:
            assert not found, (text, found)
            [rejection] = rejected
            assert rejection.field == FIELDS[loader], (text, rejection)
            assert text.lower() in rejection.reason.lower() or text.lower() in {"nan", "inf", "infinity"}, rejection
        elif expected is None:
            assert not found and not rejected, (text, found, rejected)
        else:
            assert not rejected, (text, rejected)
            [key] = found
            assert stored[key] == pytest.approx(expected), text
