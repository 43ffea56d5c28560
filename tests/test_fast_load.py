"""The load's fast paths give what the plain paths gave: the streamed JSON list, the tuple insert
(COPY on PostgreSQL), duplicates found across chunks without a set of every id read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from data_sources import textfiles
from data_sources.errors import LoadError
from data_sources.loading import load_file
from data_sources.schema import COLUMN_NAMES
from data_sources.store import allocations, insert_allocation_rows

# --- stream_json_list -------------------------------------------------------------------------

ODD_PACKAGES = {
    "plain": '{"grants": [{"id": "a"}, {"id": "b"}]}',
    "other keys around": '{"license": "x", "meta": {"grants": [9]}, "grants": [{"id": "a"}], "extra": [1, 2]}',
    "whitespace everywhere": ' \r\n{ \t"grants" \n: \r[ {"id":"a"} ,\n\t{"id" : "b"} ] \n, "n" : 1 }\n\n',
    "empty list": '{"grants": []}',
    "nested and odd items": '{"grants": [{"id": "a", "x": {"y": [[[[{"z": null}]]]]}}, 5, "text", null, [], true]}',
    "numbers json reads its own way": '{"grants": [{"amountAwarded": NaN}, {"amountAwarded": -Infinity}, 1e400, '
    '12345678901234567890123, 0.1, -0.5E-3, 7]}',
    "duplicate keys inside a grant": '{"grants": [{"id": "a", "id": "b"}]}',
    "unicode and escapes": '{"grants": [{"title": "Caf\\u00e9 \\ud83d\\ude00 \\"quoted\\" \\\\ \u00e9\u4e2d"}]}',
    "grants first given as a non-list": '{"grants": 5, "grants": [{"id": "a"}]}',
    "long text": '{"grants": [{"description": "' + "word " * 50_000 + '"}, {"id": "b"}]}',
}


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("name", list(ODD_PACKAGES))
def test_the_streamed_list_is_what_json_loads_gives(tmp_path: Path, name: str, chunk: int) -> None:
    text = ODD_PACKAGES[name]
    path = tmp_path / "package.json"
    path.write_text(text, encoding="utf-8")
    streamed = list(textfiles.stream_json_list(path, "grants", chunk_chars=chunk))
    expected = json.loads(text)["grants"]
    assert json.dumps(streamed) == json.dumps(expected)  # NaN compares unequal to itself; its text does not
    assert [type(v) for v in streamed] == [type(v) for v in expected]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252", "latin-1"])
def test_the_streamed_list_reads_the_encodings_read_json_reads(tmp_path: Path, encoding: str) -> None:
    text = '{"grants": [{"title": "Caf\u00e9 \u00a3 \u00e6"}, {"id": "\u00fc"}]}'
    path = tmp_path / "package.json"
    path.write_bytes(text.encode(encoding))
    assert list(textfiles.stream_json_list(path, "grants", chunk_chars=5)) == textfiles.read_json(path)["grants"]


@pytest.mark.parametrize("text", [
    '[{"grants": []}]', '{"data": []}', '{"grants": {"id": "a"}}', '{"grants": [1], "grants": null}', '"x"',
])
def test_no_list_is_said_as_such(tmp_path: Path, text: str) -> None:
    path = tmp_path / "package.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises((textfiles.NoJsonList, LoadError)):
        list(textfiles.stream_json_list(path, "grants", chunk_chars=4))


@pytest.mark.parametrize("text", [
    '{"grants": [{"id": "a"}, {"id": "b"}',  # truncated
    '{"grants": [{"id": "a"} {"id": "b"}]}',  # a missing comma
    '{"grants": [{"id": "a"}]} trailing',  # more after the document
    '{"grants": [{"id": "a"}, ' + "[" * 100_000 + "]" * 100_000 + "]}",  # nested too deeply
    '{"grants": [{"amountAwarded": ' + "9" * 5000 + "}]}",  # an integer too long to convert
])
def test_invalid_json_fails_with_read_json_s_own_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "package.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError) as expected:
        textfiles.read_json(path)
    with pytest.raises(LoadError) as streamed:
        list(textfiles.stream_json_list(path, "grants", chunk_chars=16))
    assert str(streamed.value) == str(expected.value)


def test_a_second_grants_list_after_the_first_was_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "package.json"
    path.write_text('{"grants": [{"id": "a"}], "grants": [{"id": "b"}]}', encoding="utf-8")
    with pytest.raises(LoadError, match='"grants" is given twice'):
        list(textfiles.stream_json_list(path, "grants"))


# --- insert_allocation_rows ---------------------------------------------------------------------


def _row(record_id: str, **values: object) -> tuple[object, ...]:
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(source="360giving", record_id=record_id, alloc=0, allocation_share=1.0, flow_type="grant",
               amount=0.1 + 0.2, currency="GBP", amount_usd=1 / 3, fx_rate=1.2345678901234567, fx_note="ECB",
               year=2020, date="2020-03-01", geo_level="unknown", source_file="f", load_id=1)
    row.update(values)
    return tuple(row[name] for name in COLUMN_NAMES)


def test_tuple_insert_stores_values_exactly(engine) -> None:
    """COPY (PostgreSQL) and executemany (SQLite) keep every value: floats to the last bit, NULLs, and text
    with the characters COPY's text format escapes."""
    tricky = "tab\there, line\nbreak, back\\slash, \\N, quote \" and ' , \u00e9\u4e2d \U0001f600, \r"
    rows = [
        _row("G-1", title=tricky, description="", lat=-1.2345678901234567, lon=36.8, geo_level="point"),
        _row("G-2", amount=None, amount_usd=None, fx_rate=None, fx_note=None, year=None, date=None),
        _row("G-3", amount=-1e300, amount_usd=5e-324, admin1_name="\\."),
    ]
    with engine.begin() as conn:
        insert_allocation_rows(conn, rows)
        insert_allocation_rows(conn, [])
    with engine.connect() as conn:
        stored = conn.execute(select(*[allocations.c[n] for n in COLUMN_NAMES]).order_by(allocations.c.record_id))
        assert [tuple(r) for r in stored] == rows


def test_tuple_insert_is_rolled_back_with_its_transaction(engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        insert_allocation_rows(conn, [_row("G-1")])
        raise RuntimeError("the load fails after the insert")
    with engine.connect() as conn:
        assert conn.execute(select(allocations.c.record_id)).all() == []


# --- duplicates across chunks ------------------------------------------------------------------


def _grant(grant_id: str, amount: float) -> dict:
    return {"id": grant_id, "title": grant_id, "currency": "GBP", "amountAwarded": amount,
            "awardDate": "2020-01-02", "recipientOrganization": [{"id": "GB-CHC-1", "name": "R"}],
            "fundingOrganization": [{"id": "F", "name": "F"}]}


def test_duplicates_are_found_across_chunks_and_against_other_files(engine, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("data_sources.loading.CHUNK_RECORDS", 2)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"grants": [_grant("X-1", 5)]}), encoding="utf-8")
    load_file(engine, other)
    path = tmp_path / "grants.json"
    # giving360 itself rejects a grant id seen before in the file; the store's checks see the rest.
    grants = [_grant("G-1", 1), _grant("X-1", 2), _grant("G-2", 3), _grant("G-3", 4), _grant("X-1", 6)]
    path.write_text(json.dumps({"grants": grants}), encoding="utf-8")
    result = load_file(engine, path)
    assert [(r.record_id, r.field) for r in result.rejections] == [("X-1", "record_id"), ("X-1", "Identifier")]
    assert "already stored from" in result.rejections[0].reason
    assert result.records_read == 5 and result.rows_stored == 3
    with engine.connect() as conn:
        frame = pd.read_sql(select(allocations.c.record_id, allocations.c.amount), conn)
    assert sorted(frame.itertuples(index=False, name=None)) == [("G-1", 1.0), ("G-2", 3.0), ("G-3", 4.0), ("X-1", 5.0)]
    assert not any(math.isnan(a) for a in frame["amount"])


def test_the_load_finds_a_record_id_again_in_a_later_chunk(engine, tmp_path: Path, monkeypatch) -> None:
    """Without a set of every id read: a record of this file stored by an earlier chunk is found in the
    store, and one rejected as stored from another file is remembered, as before."""
    from data_sources import giving360
    from data_sources.records import SourceRecord

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"grants": [_grant("X-1", 5)]}), encoding="utf-8")
    load_file(engine, other)

    def record(record_id: str, amount: float) -> SourceRecord:
        return SourceRecord(source="360giving", record_id=record_id, flow_type="grant", amount=amount,
                            currency="GBP", year=2020)

    def read(_path):
        yield from (record("G-1", 1), record("X-1", 2), record("G-2", 3), record("G-1", 4), record("X-1", 6),
                    record("G-2", 7), record("G-3", 8))

    path = tmp_path / "grants.json"
    path.write_text(json.dumps({"grants": []}), encoding="utf-8")
    monkeypatch.setattr("data_sources.loading.CHUNK_RECORDS", 2)
    monkeypatch.setattr(giving360, "read", read)
    result = load_file(engine, path)
    assert [(r.record_id, r.reason.split(" ")[0]) for r in result.rejections] == [
        ("X-1", "already"), ("G-1", "duplicate"), ("X-1", "duplicate"), ("G-2", "duplicate")]
    assert result.rows_stored == 3 and result.records_read == 7
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(allocations.c.record_id, allocations.c.amount)).all())
    assert [tuple(r) for r in stored] == [("G-1", 1.0), ("G-2", 3.0), ("G-3", 8.0), ("X-1", 5.0)]


# --- SeenIds -------------------------------------------------------------------------------------


def test_seen_ids_remember_every_id_and_where_exactly() -> None:
    from data_sources.records import SeenIds

    seen = SeenIds(batch=7)  # small batches: most ids end up in the sorted array
    ids = [f"G-{i:05d}" for i in range(200)] + ["a", "a\x00", "a\x01", "\u00e9\ud800", "x" * 500, "", "G-00001 "]
    for n, record_id in enumerate(ids):
        assert seen.get(record_id) is None, record_id
        seen.add(record_id, f"grants[{n}]" if n % 50 else "'Sheet\x00' row " + "9" * 200)
    assert len(seen) == len(ids)
    for n, record_id in enumerate(ids):
        assert seen.get(record_id) == (f"grants[{n}]" if n % 50 else "'Sheet\x00' row " + "9" * 200)
    for other in ("a\x00\x00", "G-0000", "G-00001\x00", "x" * 499, "b"):
        assert seen.get(other) is None


def test_a_duplicate_grant_far_apart_is_still_named_with_its_first_place(tmp_path: Path) -> None:
    from data_sources import giving360
    from data_sources.errors import Rejection

    grants = [_grant(f"G-{i}", i + 1) for i in range(120_001)] + [_grant("G-3", 9)]
    path = tmp_path / "grants.json"
    path.write_text(json.dumps({"grants": grants}), encoding="utf-8")
    rejections = [r for r in giving360.read(path) if isinstance(r, Rejection)]
    assert [(r.record_id, r.field, r.reason) for r in rejections] == [
        ("G-3", "Identifier", "duplicate grant id (first at grants[3])")]


# --- country names: coco's regular expressions without its per-call set-up ------------------------


def test_regex_match_is_what_country_converter_gives() -> None:
    import random

    from data_sources import geography

    coco = geography._coco()

    def through_coco(text: str) -> str | None:
        found = coco.convert(text, src="regex", to="ISO3", not_found="\0")
        if not isinstance(found, str) or found == "\0":
            return None
        return found if found in geography._tables()[1] else None

    names = [*coco.data["name_short"], *coco.data["name_official"], "Asia excluding China", "China without Hong Kong",
             "Congo", "Korea", "Sudan and South Sudan", "Guinea", "Niger", "  kenya ", "w/o Kenya", "Kenya excl. x",
             "C\u00f4te d'Ivoire", "Virgin Islands", "St. Kitts", "", "x"]
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz -'"
    names += ["".join(rng.choice(letters) for _ in range(rng.randint(2, 24))) for _ in range(300)]
    assert [geography._regex_match(n) for n in names] == [through_coco(n) for n in names]
