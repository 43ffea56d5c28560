"""Tests of the OCHA FTS flow loader: the real API pages and HDX CSVs checked against an independent
count, and small hand-made flows for each mapping rule."""

from __future__ import annotations

import copy
import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data_sources import enrich, fts, remote, schema, themes
from data_sources.allocation import allocate
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord

from .conftest import shared_file, shared_files

PAGES = shared_files("ocha_fts", "custom-search-locationid-1-year-2020*.json")
CSVS = [shared_file("ocha_fts", f"fts_{boundary}_funding_afg.csv") for boundary in ("incoming", "internal")]
FLOW_FILES = PAGES + CSVS
REQUIREMENT_CSVS = shared_files("ocha_fts", "fts_requirements_funding*.csv")
PAGE_1 = shared_file("ocha_fts", "custom-search-locationid-1-year-2020.json")

# Figures read off the files once (flows, sum of amountUSD); the independent count below is the real check.
PINNED = {
    "custom-search-locationid-1-year-2020.json": (200, 335_371_009),
    "custom-search-locationid-1-year-2020-page-2.json": (200, 358_775_061),
    "custom-search-locationid-1-year-2020-page-3.json": (84, 131_929_660),
    "fts_incoming_funding_afg.csv": (328, 754_117_611),
    "fts_internal_funding_afg.csv": (156, 71_958_119),
}


def _split(items: list[SourceRecord | Rejection]) -> tuple[list[SourceRecord], list[Rejection]]:
    records = [r for r in items if isinstance(r, SourceRecord)]
    return records, [r for r in items if isinstance(r, Rejection)]


def _read(path: Path) -> tuple[list[SourceRecord], list[Rejection]]:
    return _split(list(fts.read(path)))


# --- an independent reading of the same files, with plain json / csv --------------------------


def _expected(path: Path) -> tuple[int, float, dict[str, float]]:
    """Flows, sum of amountUSD, and amount per currency (the original one where both are given)."""
    if path.suffix == ".json":
        flows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["data"]["flows"]
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            flows = list(csv.DictReader(fh))
    usd = 0.0
    per_currency: dict[str, float] = defaultdict(float)
    for flow in flows:
        usd += float(flow["amountUSD"])
        original, currency = flow.get("originalAmount"), flow.get("originalCurrency")
        if original not in (None, "") and currency:
            per_currency[currency] += float(original)
        else:
            per_currency["USD"] += float(flow["amountUSD"])
    return len(flows), usd, dict(per_currency)


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_real_files_match_an_independent_count(path: Path) -> None:
    count, usd, per_currency = _expected(path)
    records, rejections = _read(path)
    assert rejections == []
    assert len(records) == count == PINNED[path.name][0]
    assert sum(r.amount_usd for r in records) == pytest.approx(usd) == PINNED[path.name][1]
    amounts: dict[str, float] = defaultdict(float)
    for r in records:
        amounts[r.currency] += r.amount
    assert amounts.keys() == per_currency.keys()
    for currency, total in per_currency.items():
        assert amounts[currency] == pytest.approx(total), currency
    assert len({r.record_id for r in records}) == len(records)


def test_pages_add_up_to_meta_count() -> None:
    assert [p.name for p in PAGES] == [
        "custom-search-locationid-1-year-2020-page-2.json",
        "custom-search-locationid-1-year-2020-page-3.json",
        "custom-search-locationid-1-year-2020.json",
    ]
    meta_count = json.loads(PAGE_1.read_text(encoding="utf-8"))["meta"]["count"]
    assert meta_count == 484
    assert sum(len(_read(p)[0]) for p in PAGES) == meta_count


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_canonical_rows_pass_the_schema(path: Path) -> None:
    records, _ = _read(path)
    rows = []
    for record in records:
        own = enrich.canonical_rows(record, "f", 1)
        assert math.isclose(sum(r["allocation_share"] for r in own), 1.0)
        assert sum(r["amount"] for r in own) == pytest.approx(record.amount)
        assert sum(r["amount_usd"] for r in own) == pytest.approx(record.amount_usd)
        rows.extend(own)
    frame = schema.validate(schema.coerce(pd.DataFrame(rows, columns=schema.COLUMN_NAMES)))
    assert set(frame["source"]) == {"ocha_fts"}
    assert frame["amount_usd"].sum() == pytest.approx(PINNED[path.name][1])
    assert frame["country_iso3"].notna().all()  # every real flow names its destination country


def test_json_pages_and_csvs_give_the_same_records() -> None:
    from_json = {r.record_id: r for p in PAGES for r in _read(p)[0]}
    from_csv = {r.record_id: r for p in CSVS for r in _read(p)[0]}
    assert from_json.keys() == from_csv.keys()
    for record_id, record in from_json.items():
        other = from_csv[record_id]
        if record_id == "207188":
            # The HDX scraper's fixture lookup knew only AFG, JOR and PSE, so its CSV dropped the
            # other four of the six destination countries.
            assert [p.country for p in record.places] == ["AFG", "IRN", "IRQ", "JOR", "LBN", "SYR"]
            assert [p.country for p in other.places] == ["AFG", "JOR"]
            other.places = record.places
        assert record == other, record_id


# --- mapping rules, on real flows -------------------------------------------------------------


def _by_id(path: Path) -> dict[str, SourceRecord]:
    return {r.record_id: r for r in _read(path)[0]}


def test_real_flow_mapping() -> None:
    records = _by_id(PAGE_1)
    first = records["158080"]
    assert (first.flow_type, first.amount, first.currency, first.amount_usd) == ("commitment", 119700, "CHF", 118868)
    assert (first.year, first.date) == (2020, "2016-03-31")  # the usage year, not the year of the date
    assert (first.funder_id, first.funder_name, first.funder_type) == (None, "Switzerland, Government of", "Government")
    assert (first.recipient_name, first.recipient_type) == ("World Food Programme", "UN agency")
    assert first.title is None and first.description.startswith("WFP Secondment")
    assert first.source_sector == first.theme_hint == "Coordination and support services"
    assert [p.country for p in first.places] == ["AFG"]  # not Switzerland, the donor's location

    multi_year = records["166266"]  # usage years 2018, 2019, 2020: the year of the date
    assert (multi_year.year, multi_year.date, multi_year.amount, multi_year.currency) == (2017, "2017-11-17", 0, "EUR")

    jpy = records["207176"]  # originalCurrency JPY but no originalAmount
    assert (jpy.amount, jpy.currency, jpy.amount_usd) == (2345890, "USD", 2345890)

    paid = [r for r in records.values() if r.flow_type == "disbursement"]
    assert len(paid) == 130


def test_csv_multi_valued_cells() -> None:
    internal = _by_id(shared_file("ocha_fts", "fts_internal_funding_afg.csv"))
    hlp = internal["211797"]  # "Housing, Land and Property,Protection"
    assert [s.name for s in hlp.sectors] == ["Housing, Land and Property", "Protection"]
    assert hlp.source_sector == "Housing, Land and Property; Protection"
    assert (hlp.funder_name, hlp.funder_type) == ("Afghanistan Humanitarian Fund", "Pooled fund")
    incoming = _by_id(shared_file("ocha_fts", "fts_incoming_funding_afg.csv"))
    assert [p.country for p in incoming["207188"].places] == ["AFG", "JOR"]


def test_cluster_names_reach_the_theme() -> None:
    assert themes.theme_for_text("Water Sanitation Hygiene") == "WASH"
    records = _by_id(PAGE_1)
    wash = [r for r in records.values() if r.source_sector == "Water Sanitation Hygiene"]
    assert wash
    for row in enrich.canonical_rows(wash[0], "f", 1):
        assert (row["theme"], row["sector_code"], row["source_sector"]) == ("WASH", None, "Water Sanitation Hygiene")


# --- hand-made flows --------------------------------------------------------------------------


def _real_flow(flow_id: str = "158080") -> dict[str, Any]:
    flows = json.loads(PAGE_1.read_text(encoding="utf-8"))["data"]["flows"]
    return copy.deepcopy(next(f for f in flows if f["id"] == flow_id))


def _write_flows(tmp_path: Path, *flows: dict[str, Any], name: str = "flows.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"data": {"flows": list(flows)}, "meta": {"count": len(flows)}}), encoding="utf-8")
    return path


def test_two_locations_and_two_clusters_give_four_allocations(tmp_path: Path) -> None:
    flow = _real_flow()
    kept = [o for o in flow["destinationObjects"] if o["type"] not in ("Location", "GlobalCluster")]
    flow["destinationObjects"] = kept + [
        {"type": "Location", "id": "1", "name": "Afghanistan", "behavior": "shared"},
        {"type": "Location", "id": "171", "name": "occupied Palestinian territory", "behavior": "shared"},
        {"type": "GlobalCluster", "id": "26479", "name": "Water Sanitation Hygiene", "behavior": "shared"},
        {"type": "GlobalCluster", "id": "26480", "name": "Health", "behavior": "shared"},
    ]
    [record] = _read(_write_flows(tmp_path, flow))[0]
    assert [p.country for p in record.places] == ["AFG", "PSE"]
    assert [s.name for s in record.sectors] == ["Health", "Water Sanitation Hygiene"]
    assert record.source_sector == "Health; Water Sanitation Hygiene"
    allocations = allocate(record)
    assert len(allocations) == 4
    assert math.isclose(sum(a.share for a in allocations), 1.0)
    assert sum(a.amount for a in allocations) == pytest.approx(record.amount) == 119700
    rows = enrich.canonical_rows(record, "f", 1)
    assert sorted(r["country_iso3"] for r in rows) == ["AFG", "AFG", "PSE", "PSE"]
    assert sum(r["amount_usd"] for r in rows) == pytest.approx(118868)
    schema.validate(schema.coerce(pd.DataFrame(rows, columns=schema.COLUMN_NAMES)))


def test_plan_only_destination_has_no_place(tmp_path: Path) -> None:
    flow = _real_flow()
    flow["destinationObjects"] = [
        {"type": "Plan", "id": "929", "name": "Afghanistan 2020", "behavior": "single"},
        {"type": "UsageYear", "id": "41", "name": "2020", "behavior": "single"},
    ]
    [record] = _read(_write_flows(tmp_path, flow))[0]
    assert record.places == [] and record.recipient_name is None and record.sectors == []
    [row] = enrich.canonical_rows(record, "f", 1)
    assert (row["country_iso3"], row["geo_level"]) == (None, "unknown")


def test_rejections_name_the_field(tmp_path: Path) -> None:
    def flow(**changes: Any) -> dict[str, Any]:
        base = _real_flow()
        for key, value in changes.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        return base

    undated = flow(id="6", date="someday")
    undated["destinationObjects"] = [o for o in undated["destinationObjects"] if o["type"] != "UsageYear"]
    path = _write_flows(
        tmp_path,
        flow(id="1", amountUSD=None),
        flow(id="2", amountUSD="lots"),
        flow(id="3", amountUSD=float("nan")),  # json writes NaN, which json reads back
        flow(id="4", status="rumoured"),
        flow(id=None),
        undated,
        "not a flow",
        flow(id="ok", status="pledge", originalAmount=None, originalCurrency=None),
        flow(id="ok"),
    )
    records, rejections = _read(path)
    assert [(r.record_id, r.flow_type, r.currency, r.amount) for r in records] == [("ok", "pledge", "USD", 118868)]
    assert [(r.record_id, r.field) for r in rejections] == [
        ("1", "amountUSD"),
        ("2", "amountUSD"),
        ("3", "amountUSD"),
        ("4", "status"),
        ("flows[4]", "id"),
        ("6", "date"),
        ("flows[6]", "id"),
        ("ok", "id"),
    ]
    assert "no amountUSD" in rejections[0].reason
    assert "duplicate" in rejections[-1].reason


def test_original_amount_of_zero_with_usd_stated_keeps_usd(tmp_path: Path) -> None:
    [record] = _read(_write_flows(tmp_path, _real_flow() | {"originalAmount": 0}))[0]
    assert (record.amount, record.currency, record.amount_usd) == (118868, "USD", 118868)


def test_csv_hxl_row_bom_and_missing_amount(tmp_path: Path) -> None:
    lines = shared_file("ocha_fts", "fts_incoming_funding_afg.csv").read_text(encoding="utf-8").splitlines()
    header = next(csv.reader([lines[0]]))
    hxl = ",".join("#" + h.lower() if i < 5 else "" for i, h in enumerate(header))
    rows = list(csv.DictReader(lines))[:2]
    rows[1]["amountUSD"] = ""
    path = tmp_path / "hxl.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        fh.write(lines[0] + "\r\n" + hxl + "\r\n")
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writerows(rows)
    assert fts.detect(path.read_bytes())
    records, rejections = _read(path)
    assert [r.record_id for r in records] == [rows[0]["id"]]
    assert [(r.record_id, r.field) for r in rejections] == [(rows[1]["id"], "amountUSD")]


def test_csv_without_flow_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(LoadError, match="not an FTS flow CSV"):
        list(fts.read(path))


# --- files that are not flows -----------------------------------------------------------------


@pytest.mark.parametrize("path", REQUIREMENT_CSVS, ids=lambda p: p.name)
def test_requirements_csv_is_a_clear_load_error(path: Path) -> None:
    assert not fts.detect(path.read_bytes())
    with pytest.raises(LoadError) as info:
        list(fts.read(path))
    assert "requirements/funding summary, not flows" in info.value.reason
    assert "fundatlas loads flows" in info.value.reason
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    ("name", "what"),
    [("2-fts-flow-plan-overview-progress-2020.json", "plan overview"), ("1-public-location.json", "location lookup")],
)
def test_other_fts_json_is_a_clear_load_error(name: str, what: str) -> None:
    with pytest.raises(LoadError, match=f"{what}.*not flows"):
        list(fts.read(shared_file("ocha_fts", name)))


def test_broken_json_is_a_load_error_with_position(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(PAGE_1.read_bytes()[:5000])
    with pytest.raises(LoadError) as info:
        list(fts.read(path))
    assert "line" in info.value.reason and "column" in info.value.reason
    empty = tmp_path / "empty.json"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(LoadError, match="empty"):
        list(fts.read(empty))


def test_api_error_response(tmp_path: Path) -> None:
    path = tmp_path / "error.json"
    path.write_text('{"status": "error", "message": "Invalid year"}', encoding="utf-8")
    with pytest.raises(LoadError, match="Invalid year"):
        list(fts.read(path))


# --- detection and paging ---------------------------------------------------------------------


def test_detect() -> None:
    for path in FLOW_FILES:
        assert fts.detect(path.read_bytes()[: 64 * 1024]), path.name
    assert fts.detect(PAGE_1.read_bytes()[:300])  # cut early: still flows
    assert fts.detect(b'\xef\xbb\xbf{"data": {"flows": [ ]}, "meta": {"count": 0}}')  # an empty last page
    assert fts.detect(b'{"data": {"flows": [{"id": "1", "amountUSD": 5')
    assert fts.detect(b"\xef\xbb\xbf" + CSVS[0].read_bytes()[:2000])

    not_flows = [
        shared_file("ocha_fts", "2-fts-flow-plan-overview-progress-2020.json"),
        shared_file("ocha_fts", "1-public-location.json"),
        *REQUIREMENT_CSVS,
        shared_file("iati", "worldbank-sv.xml"),
        shared_file("360giving", "power_to_change_a002400000nO46WAAS.json"),
    ]
    for path in not_flows:
        assert not fts.detect(path.read_bytes()[: 64 * 1024]), path.name
    assert not fts.detect(b'{"note": "flows", "amountUSD": 3}')  # the word, not a flows array
    assert not fts.detect(b"Identifier,Amount Awarded,Currency,Award Date,Funding Org:Name\n")
    assert not fts.detect(b"id,amountUSD\n1,2\n")  # no party columns


def test_next_link() -> None:
    pages = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in PAGES}
    first = fts.next_link(pages["custom-search-locationid-1-year-2020.json"])
    assert first == (
        "https://github.com/OCHA-DAP/hdx-scraper-fts/raw/main/tests/fixtures/input/"
        "custom-search-locationid-1-year-2020-page-2.json"
    )
    assert fts.next_link(pages["custom-search-locationid-1-year-2020-page-2.json"]).endswith("2020-page-3.json")
    assert fts.next_link(pages["custom-search-locationid-1-year-2020-page-3.json"]) is None
    base = "https://api.hpc.tools/v1/public/fts/flow?year=2020"
    assert fts.next_link({"meta": {"nextLink": "/v1/public/fts/flow?year=2020&page=2"}}, base) == (
        "https://api.hpc.tools/v1/public/fts/flow?year=2020&page=2"
    )
    for document in ({"meta": {"nextLink": ""}}, {"meta": {"nextLink": "javascript:alert(1)"}}, {"meta": None}, {}):
        assert fts.next_link(document) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.hpc.tools/v1/public/fts/flow?locationid=1&year=2020", True),
        ("https://api.hpc.tools/v1/public/fts/flow/custom-search?locationid=1&year=2020", True),
        ("HTTPS://API.HPC.TOOLS/v1/public/fts/flow/?planid=929", True),
        ("https://api.hpc.tools/v1/public/fts/flow?year=2020&groupby=plan", False),
        ("https://api.hpc.tools/v1/public/fts/flow/plan/overview/progress/2020", False),
        ("https://api.hpc.tools/v1/public/location", False),
        ("https://fts.unocha.org/countries/1/flows/2020", False),
        ("https://api.hpc.tools.example.com/v1/public/fts/flow", False),
        ("ftp://api.hpc.tools/v1/public/fts/flow", False),
        ("not a url", False),
    ],
)
def test_is_fts_api_url(url: str, expected: bool) -> None:
    assert remote.is_fts_api_url(url) is expected  # the one URL test the fetcher uses
