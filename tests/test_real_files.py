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

STREAM_FOLDERS = {"360giving": "360giving", "iati": "iati"}


def _stream_files():
    return [path for folder in STREAM_FOLDERS.values() for path in shared_files(folder, "*")]


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
