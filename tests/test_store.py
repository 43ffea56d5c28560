"""The store's promises, on SQLite and on PostgreSQL/PostGIS:
same file twice changes nothing; a newer version replaces its rows; a failed load leaves the
store as it was; invariants of ../shared/DESIGN.md hold for every stored row.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from sqlalchemy import select, text

from data_sources import iati
from data_sources.errors import LoadError
from data_sources.loading import load_file
from data_sources.records import SourceRecord
from data_sources.store import allocations, loads
from tests.conftest import shared_file

IATI_FILE = ("iati", "dportal_foodsecurity.xml")


def _snapshot(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(select(allocations), conn)
    return frame.sort_values("row_id").reset_index(drop=True)


def _loads(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(select(loads).order_by(loads.c.load_id), conn)


def _grants_file(path, grants: list[dict]) -> None:
    path.write_text(json.dumps({"grants": grants}), encoding="utf-8")


def _grant(grant_id: str, amount: float, country: str = "KE") -> dict:
    return {
        "id": grant_id, "title": f"Grant {grant_id}", "currency": "GBP", "amountAwarded": amount,
        "awardDate": "2020-05-01", "fundingOrganization": [{"id": "XX-DEMO-F1", "name": "Demo Funder"}],
        "recipientOrganization": [{"id": "XX-DEMO-R1", "name": "Demo Recipient"}],
        "beneficiaryLocation": [{"countryCode": country}],
    }


def test_loading_the_same_file_twice_changes_nothing(engine):
    path = shared_file(*IATI_FILE)
    first = load_file(engine, path)
    assert first.status == "succeeded" and first.rows_stored > 0
    before, before_loads = _snapshot(engine), _loads(engine)
    second = load_file(engine, path)
    assert second.status == "unchanged" and second.load_id == first.load_id
    pd.testing.assert_frame_equal(_snapshot(engine), before)
    pd.testing.assert_frame_equal(_loads(engine), before_loads)


def test_newer_version_of_a_file_replaces_its_rows(engine, tmp_path):
    path = tmp_path / "grants.json"
    _grants_file(path, [_grant("G-1", 100), _grant("G-2", 200)])
    first = load_file(engine, path)
    _grants_file(path, [_grant("G-1", 150), _grant("G-3", 300, "UG")])
    second = load_file(engine, path)
    rows = _snapshot(engine)
    assert sorted(rows["record_id"]) == ["G-1", "G-3"]
    assert rows.set_index("record_id").loc["G-1", "amount"] == 150
    assert set(rows["load_id"]) == {second.load_id}
    statuses = _loads(engine).set_index("load_id")["status"]
    assert statuses[first.load_id] == "replaced" and statuses[second.load_id] == "succeeded"


def test_a_failed_load_leaves_the_store_as_it_was(engine, tmp_path):
    load_file(engine, shared_file(*IATI_FILE))
    before = _snapshot(engine)
    # A real file cut in half: activities parse, then the XML breaks.
    data = shared_file("iati", "dportal_covid.xml").read_bytes()
    broken = tmp_path / "covid-truncated.xml"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError) as error:
        load_file(engine, broken)
    assert "covid-truncated.xml" in str(error.value)
    pd.testing.assert_frame_equal(_snapshot(engine), before)
    failed = _loads(engine).iloc[-1]
    assert failed["status"] == "failed" and failed["rows_stored"] == 0
    assert "covid-truncated.xml" in failed["message"]


def test_a_failure_after_rows_were_written_rolls_back(engine, tmp_path, monkeypatch):
    path = tmp_path / "grants.json"
    _grants_file(path, [_grant("G-1", 100)])
    load_file(engine, path)
    before = _snapshot(engine)
    _grants_file(path, [_grant("G-1", 999), _grant("G-2", 5)])

    def read_then_fail(p):
        yield SourceRecord(source="360giving", record_id="G-1", flow_type="grant", amount=999.0, currency="GBP",
                           year=2020)
        raise LoadError(str(p), "disk on fire", record="G-2", field="amountAwarded")

    from data_sources import giving360

    monkeypatch.setattr("data_sources.loading.CHUNK_RECORDS", 1)  # the first record is written before failing
    monkeypatch.setattr(giving360, "read", read_then_fail)
    with pytest.raises(LoadError, match="record G-2: field amountAwarded: disk on fire"):
        load_file(engine, path)
    pd.testing.assert_frame_equal(_snapshot(engine), before)


def test_a_record_already_stored_from_another_file_is_rejected_not_doubled(engine, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _grants_file(a, [_grant("G-1", 100)])
    _grants_file(b, [_grant("G-1", 100), _grant("G-2", 50)])
    load_file(engine, a)
    result = load_file(engine, b)
    assert [r.record_id for r in result.rejections] == ["G-1"]
    assert "a.json" in result.rejections[0].reason
    assert sorted(_snapshot(engine)["record_id"]) == ["G-1", "G-2"]


def test_invariants_hold_for_every_stored_row(engine):
    path = shared_file(*IATI_FILE)
    load_file(engine, path)
    rows = _snapshot(engine)
    records = {r.record_id: r for r in iati.read(path) if isinstance(r, SourceRecord)}
    assert set(rows["record_id"]) == set(records)
    for record_id, group in rows.groupby("record_id"):
        assert group["allocation_share"].sum() == pytest.approx(1.0)
        assert sorted(group["alloc"]) == list(range(len(group)))
        assert group["amount"].sum() == pytest.approx(records[record_id].amount)
    usd = rows["amount_usd"].dropna()
    assert all(math.isfinite(v) for v in usd)
    no_usd = rows[rows["amount_usd"].isna() & rows["amount"].notna()]
    assert no_usd["fx_note"].notna().all()


def test_postgis_point_column_follows_lat_lon(store_url, engine):
    if not store_url.startswith("postgresql"):
        assert engine.dialect.name == "sqlite"
        return
    load_file(engine, shared_file(*IATI_FILE))
    with engine.connect() as conn:
        with_points, with_geom, off = conn.execute(text(
            "SELECT count(*) FILTER (WHERE lat IS NOT NULL), count(geom), "
            "count(*) FILTER (WHERE geom IS NOT NULL "
            "AND (abs(ST_Y(geom) - lat) > 1e-9 OR abs(ST_X(geom) - lon) > 1e-9)) "
            "FROM allocations"
        )).one()
    assert with_points > 0 and with_geom == with_points and off == 0


def test_a_store_from_an_earlier_version_gains_the_new_columns(tmp_path):
    import sqlite3

    from data_sources.store import allocations, open_store

    path = tmp_path / "old.sqlite"
    old_columns = [c for c in allocations.columns if c.name not in ("allocation_basis", "recipient_country_iso3")]
    with sqlite3.connect(path) as conn:  # the table as an earlier fundatlas made it, with a row
        conn.execute("CREATE TABLE allocations (" + ", ".join(
            f"{c.name} {'INTEGER PRIMARY KEY' if c.name == 'row_id' else 'TEXT'}" for c in old_columns) + ")")
        conn.execute("INSERT INTO allocations (source, record_id, alloc) VALUES ('iati', 'A', 0)")
    engine = open_store(f"sqlite:///{path}")
    with engine.connect() as conn:
        row = conn.execute(allocations.select()).mappings().one()
    assert row["record_id"] == "A" and row["allocation_basis"] is None and row["recipient_country_iso3"] is None
    engine.dispose()
