"""Every real file of the loaded streams goes into one store (SQLite and PostGIS): the stored records
are the loaders' records, every row passed the schema on the way in, and the summary adds up."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from data_sources import registry
from data_sources.loading import load_file
from data_sources.queries import summary
from data_sources.records import SourceRecord
from data_sources.store import allocations
from tests.conftest import shared_files

# The files of each stream that hold funding records (the folders also hold lookups and summaries).
STREAM_FILES = {
    "360giving": ("360giving", "*"),
    "iati": ("iati", "*.xml"),
    "oecd_crs": ("oecd_crs", "*.csv"),
    "ocha_fts": ("ocha_fts", "custom-search-*.json"),
    "hdx_3w": ("hdx_3w", "*.csv"),
}


def _stream_files():
    return [path for folder, pattern in STREAM_FILES.values() for path in shared_files(folder, pattern)]


def test_all_real_files_into_one_store(engine):
    expected: dict[str, int] = {}
    for path in _stream_files():
        loader = registry.detect_format(path)
        records = [r for r in loader.read(path) if isinstance(r, SourceRecord)]
        result = load_file(engine, path)
        assert result.status == "succeeded", result.message
        assert result.records_read - result.records_rejected == len(records)
        expected[loader.NAME] = expected.get(loader.NAME, 0) + len(records)
    data = summary(engine)
    assert {name: figures["records"] for name, figures in data["by_source"].items()} == expected
    assert data["usd"] == pytest.approx(sum(f["usd"] for f in data["by_source"].values()))
    with engine.connect() as conn:
        shares = conn.execute(
            select(allocations.c.source, allocations.c.record_id, func.sum(allocations.c.allocation_share))
            .group_by(allocations.c.source, allocations.c.record_id)
        ).all()
    assert len(shares) == sum(expected.values())
    assert all(abs(total - 1.0) < 1e-9 for _source, _record, total in shares)
    assert set(expected) == set(STREAM_FILES)

    # One export holds rows of all five streams, and the map has countries from several of them.
    from data_sources.export import iter_csv
    from data_sources.filters import Filters
    from data_sources.queries import country_totals, iter_rows

    sources = {row["source"] for row in iter_rows(engine, Filters())}
    assert sources == set(STREAM_FILES)
    assert b"".join(iter_csv(iter_rows(engine, Filters(sources=("hdx_3w",))))).count(b"\r\n") > 10_000
    totals = country_totals(engine, Filters())
    assert {"AFG", "SLV", "GBR"} <= set(totals["iso3"])


def test_fts_csv_export_of_already_loaded_flows_is_rejected_not_doubled(sqlite_engine):
    pages = [load_file(sqlite_engine, p) for p in shared_files("ocha_fts", "custom-search-*.json")]
    usd = summary(sqlite_engine)["usd"]
    csv_load = load_file(sqlite_engine, shared_files("ocha_fts", "fts_incoming_funding_afg.csv")[0])
    assert sum(p.records_read for p in pages) == 484
    assert csv_load.rows_stored == 0 and csv_load.records_rejected == csv_load.records_read
    assert "already stored from" in csv_load.rejections[0].reason
    assert summary(sqlite_engine)["usd"] == pytest.approx(usd)
