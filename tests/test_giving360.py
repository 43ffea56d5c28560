"""360Giving loader: real files checked against an independent count, plus small hand-made cases."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from data_sources import giving360
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord
from tests.conftest import shared_file, shared_files

REAL_FILES = shared_files("360giving", "*")
# Grants of the real files that read() is expected to reject: file name -> {grant id: field}.
EXPECTED_REJECTIONS: dict[str, dict[str, str]] = {}


def _split(results: list[SourceRecord | Rejection]) -> tuple[list[SourceRecord], list[Rejection]]:
    records = [r for r in results if isinstance(r, SourceRecord)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    assert len(records) + len(rejections) == len(results)
    return records, rejections


def _sums(records: list[SourceRecord]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    for record in records:
        sums[record.currency] += record.amount
    return dict(sums)


def _independent(path: Path, skip: set[str]) -> tuple[list[str], dict[str, float]]:
    """Grant ids and amount per currency, computed straight from the file (not via the loader)."""
    ids: list[str] = []
    sums: dict[str, float] = defaultdict(float)
    if path.suffix.lower() == ".json":
        for grant in json.loads(path.read_text(encoding="utf-8"))["grants"]:
            ids.append(grant["id"])
            if grant["id"] not in skip:
                sums[grant["currency"]] += float(grant["amountAwarded"])
    else:
        for frame in pd.read_excel(path, sheet_name=None).values():
            frame = frame.rename(columns=lambda c: " ".join(str(c).split()).lower())
            if "amount awarded" not in frame.columns:
                continue
            frame = frame.dropna(how="all")
            ids.extend(frame["identifier"].astype(str))
            kept = frame[~frame["identifier"].isin(skip)]
            for currency, total in kept.groupby("currency")["amount awarded"].sum().items():
                sums[currency] += float(total)
    return ids, dict(sums)


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_file_totals_match_an_independent_count(path: Path) -> None:
    head = path.read_bytes()[: 64 * 1024]
    assert giving360.detect(head)
    if head.startswith(b"PK"):
        assert giving360.sniff_xlsx(path)

    expected_rejected = EXPECTED_REJECTIONS.get(path.name, {})
    ids, sums = _independent(path, set(expected_rejected))
    records, rejections = _split(list(giving360.read(path)))

    assert len(records) + len(rejections) == len(ids)
    assert {r.record_id: r.field for r in rejections} == expected_rejected
    assert sorted(r.record_id for r in records) == sorted(i for i in ids if i not in expected_rejected)
    got = _sums(records)
    assert got.keys() == sums.keys()
    for currency, total in sums.items():
        assert got[currency] == pytest.approx(total, rel=1e-12)
    for record in records:
        assert record.source == "360giving" and record.flow_type == "grant"
        assert record.date is not None and record.year == int(record.date[:4])
        assert 1900 <= record.year <= 2100
        assert record.currency is not None and len(record.currency) == 3
        assert record.funder_id and record.funder_name
        assert record.points == []
        assert all(p.share is None and p.admin1_pcode is None for p in record.places)


def test_real_power_to_change_lsoa_locations_are_gb() -> None:
    path = shared_file("360giving", "power_to_change_a002400000nO46WAAS.json")
    records, _ = _split(list(giving360.read(path)))
    assert len(records) == 870
    assert all([(p.country, p.admin1_name) for p in r.places] == [("GB", None)] for r in records)
    first = next(r for r in records if r.record_id == "360G-ptc-gr-01653")
    assert first.amount == 3239.34 and first.date == "2015-06-01"
    assert (first.start_date, first.end_date) == ("2017-01-17", "2017-06-14")
    assert first.recipient_id == "GB-COH-IP28755R"
    assert first.recipient_type == "Industrial and provident society"
    assert first.source_sector == first.theme_hint == "CB Leadership (CBL)"


def test_real_esmee_names_and_classifications() -> None:
    records, _ = _split(list(giving360.read(shared_file("360giving", "esmee_grantnav-20180903134856.json"))))
    by_id = {r.record_id: r for r in records}
    grant = by_id["360G-EFF-16-3315"]
    assert grant.date == "2017-11-21" and grant.year == 2017
    assert [(p.country, p.admin1_name) for p in grant.places] == [("GB", "England/South West/Plymouth")]
    assert grant.source_sector is not None
    assert grant.source_sector.startswith("Funding priority / Art with a social impact; Arts;")
    assert grant.source_sector.endswith("; Main Grant")
    assert all(p.country == "GB" for r in records for p in r.places)


def test_real_abct_names_fall_back_to_recipient_country() -> None:
    records, _ = _split(list(giving360.read(shared_file("360giving", "abct_a001p00000zgyHZAAY.xlsx"))))
    by_id = {r.record_id: r for r in records}
    first = by_id["360G-ABCT-0065I000005BoDGQA044222"]  # "UK Wide"
    assert [(p.country, p.admin1_name) for p in first.places] == [("GB", None)]
    assert first.date == "2021-01-26" and first.amount == 30000.0
    assert first.source_sector == "Human Rights, particularly access to justice"
    london = by_id["360G-ABCT-0060X00000XC5edQAD44222"]  # "London", recipient GB-CHC-277927
    assert [(p.country, p.admin1_name) for p in london.places] == [("GB", "London")]
    # A region name with a recipient that has only a funder-made id: no country can be given.
    unknown = [r for r in records if not any(p.country for p in r.places)]
    assert unknown and all(r.recipient_id.startswith("360G-") for r in unknown)


# --------------------------------------------------------------------------- CSV from the XLSX


@pytest.mark.parametrize(
    ("encoding", "sep", "date_format"),
    [("utf-8-sig", ",", None), ("cp1252", ",", "%d/%m/%Y"), ("utf-8", ";", None)],
)
def test_csv_written_from_the_xlsx_reads_the_same(
    tmp_path: Path, encoding: str, sep: str, date_format: str | None
) -> None:
    xlsx = shared_file("360giving", "abct_a001p00000zgyHZAAY.xlsx")
    csv_path = tmp_path / "grants.csv"
    pd.read_excel(xlsx).to_csv(
        csv_path, index=False, encoding=encoding, errors="replace", sep=sep, date_format=date_format
    )
    assert giving360.detect(csv_path.read_bytes()[: 64 * 1024])

    from_xlsx, _ = _split(list(giving360.read(xlsx)))
    from_csv, rejections = _split(list(giving360.read(csv_path)))
    assert rejections == []
    assert len(from_csv) == len(from_xlsx) == 783
    assert _sums(from_csv) == pytest.approx(_sums(from_xlsx))

    def key(r: SourceRecord) -> tuple[object, ...]:
        return (r.amount, r.currency, r.date, r.funder_id, r.recipient_id, r.source_sector,
                [(p.country, p.admin1_name) for p in r.places])

    assert {r.record_id: key(r) for r in from_csv} == {r.record_id: key(r) for r in from_xlsx}


# --------------------------------------------------------------------------- hand-made cases


def _grant(**changes: object) -> dict[str, object]:
    grant: dict[str, object] = {
        "id": "360G-test-1",
        "title": "A grant",
        "currency": "GBP",
        "amountAwarded": 1000,
        "awardDate": "2017-11-21T00:00:00.000Z",
        "fundingOrganization": [{"id": "GB-CHC-200051", "name": "A Foundation"}],
        "recipientOrganization": [{"id": "360G-test-org-1", "name": "A charity"}],
    }
    grant.update(changes)
    return {k: v for k, v in grant.items() if v is not None}


def _read_json(tmp_path: Path, *grants: dict[str, object]) -> list[SourceRecord | Rejection]:
    path = tmp_path / "package.json"
    path.write_text(json.dumps({"grants": list(grants), "license": "CC-BY-4.0"}), encoding="utf-8")
    return list(giving360.read(path))


def test_two_beneficiary_locations_give_two_places(tmp_path: Path) -> None:
    locations = [
        {"name": "Nairobi", "countryCode": "ke", "latitude": "-1.29", "longitude": 36.82},
        {"name": "Kampala", "countryCode": "UG", "latitude": "not a number", "longitude": 32.58},
    ]
    [record] = _read_json(tmp_path, _grant(beneficiaryLocation=locations))
    assert isinstance(record, SourceRecord)
    assert [(p.country, p.admin1_name, p.lat, p.lon, p.share) for p in record.places] == [
        ("KE", "Nairobi", -1.29, 36.82, None),
        ("UG", "Kampala", None, None, None),
    ]


def test_rejections_name_the_field(tmp_path: Path) -> None:
    results = _read_json(
        tmp_path,
        _grant(id="no-currency", currency=None),
        _grant(id="bad-currency", currency="pounds"),
        _grant(id="bad-amount", amountAwarded="about 1000"),
        _grant(id="no-amount", amountAwarded=None),
        _grant(id="nan-amount", amountAwarded="NaN"),
        _grant(id="bad-date", awardDate="next week"),
        _grant(id="no-date", awardDate=None),
        _grant(id=None),
        _grant(id="ok", amountAwarded="£1,234.50"),
        _grant(id="ok", amountAwarded=5),
    )
    records, rejections = _split(results)
    assert [(r.record_id, r.amount) for r in records] == [("ok", 1234.5)]
    assert [(r.record_id, r.field) for r in rejections] == [
        ("no-currency", "Currency"),
        ("bad-currency", "Currency"),
        ("bad-amount", "Amount Awarded"),
        ("no-amount", "Amount Awarded"),
        ("nan-amount", "Amount Awarded"),
        ("bad-date", "Award Date"),
        ("no-date", "Award Date"),
        ("grants[7]", "Identifier"),
        ("ok", "Identifier"),
    ]
    assert "about 1000" in rejections[2].reason
    assert "duplicate" in rejections[-1].reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1,234", 1234.0), ("£1,234.50", 1234.5), (" 1 234 ", 1234.0), ("-50", -50.0), (12, 12.0)],
)
def test_text_amounts(tmp_path: Path, raw: object, expected: float) -> None:
    [record] = _read_json(tmp_path, _grant(amountAwarded=raw))
    assert isinstance(record, SourceRecord) and record.amount == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2017-11-21T00:00:00.000Z", "2017-11-21"),
        ("2015-06-01T00:00:00+00:00", "2015-06-01"),
        ("2019-02-03", "2019-02-03"),
        ("03/02/2019", "2019-02-03"),
        ("3.2.2019", "2019-02-03"),
    ],
)
def test_json_award_dates(tmp_path: Path, raw: str, expected: str) -> None:
    planned = [{"startDate": "2019-04-01", "endDate": "31/03/2021"}]
    [record] = _read_json(tmp_path, _grant(awardDate=raw, plannedDates=planned))
    assert isinstance(record, SourceRecord)
    assert (record.date, record.year) == (expected, int(expected[:4]))
    assert (record.start_date, record.end_date) == ("2019-04-01", "2021-03-31")


def test_impossible_date_is_rejected(tmp_path: Path) -> None:
    [rejection] = _read_json(tmp_path, _grant(awardDate="31/02/2019"))
    assert isinstance(rejection, Rejection) and rejection.field == "Award Date"


def test_recipient_based_fallback_country(tmp_path: Path) -> None:
    results = _read_json(
        tmp_path,
        _grant(id="chc", recipientOrganization=[{"id": "GB-CHC-1164859", "name": "A"}]),
        _grant(id="us", recipientOrganization=[{"id": "US-EIN-123456789", "name": "B"}]),
        _grant(id="xi", recipientOrganization=[{"id": "XI-GRID-grid.1234.5", "name": "C"}]),
        _grant(id="address", recipientOrganization=[{"id": "360G-x", "addressCountry": "Scotland"}]),
        _grant(
            id="named",
            beneficiaryLocation=[{"name": "Greater London"}, {"name": "Kent"}],
            recipientOrganization=[{"id": "GB-COH-08049101"}],
        ),
        _grant(id="located", beneficiaryLocation=[{"countryCode": "IE"}],
               recipientOrganization=[{"id": "GB-CHC-1"}]),
        _grant(id="individual", recipientOrganization=None,
               recipientIndividual={"id": "360G-test-IND-1", "name": "Individual recipient"}),
    )
    by_id = {r.record_id: r for r in results if isinstance(r, SourceRecord)}
    places = {k: [(p.country, p.admin1_name) for p in r.places] for k, r in by_id.items()}
    assert places == {
        "chc": [("GB", None)],
        "us": [("US", None)],
        "xi": [],
        "address": [("GB", None)],
        "named": [("GB", "Greater London"), ("GB", "Kent")],
        "located": [("IE", None)],
        "individual": [],
    }
    individual = by_id["individual"]
    assert (individual.recipient_id, individual.recipient_type) == ("360G-test-IND-1", "Individual")


def test_location_country_from_geocode_and_uk_names(tmp_path: Path) -> None:
    locations = [
        {"geoCode": "E01011681", "geoCodeType": "LSOA"},
        {"name": "UK Wide"},
        {"name": "Wales"},
        {"name": "England/South West/Plymouth"},
        {"name": "Kenya"},  # a country's name gives that country
        {},
    ]
    [record] = _read_json(tmp_path, _grant(beneficiaryLocation=locations))
    assert isinstance(record, SourceRecord)
    assert [(p.country, p.admin1_name) for p in record.places] == [
        ("GB", None),
        ("GB", None),
        ("GB", "Wales"),
        ("GB", "England/South West/Plymouth"),
        ("KEN", None),
    ]


def test_truncated_json_is_a_load_error_naming_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(shared_file("360giving", "esmee_grantnav-20180903134856.json").read_bytes()[:2000])
    with pytest.raises(LoadError) as info:
        list(giving360.read(path))
    assert info.value.file == str(path)
    assert "line" in info.value.reason and "column" in info.value.reason
    assert str(path) in str(info.value)


def test_json_without_grants_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(LoadError, match="grants"):
        list(giving360.read(path))


HEADER = [
    "Identifier", "Title", "Currency", "Amount Awarded", "Award Date", "Planned Dates:Start Date",
    "Recipient Org:Identifier", "Recipient Org:Name", "Funding Org:Identifier", "Funding Org:Name",
    "Beneficiary Location:0:Name", "Beneficiary Location:0:Country Code",
    "Beneficiary Location:1:Name", "Beneficiary Location:1:Country Code", "Classifications:0:Title",
    "Grant Programme:Title",
]


def test_xlsx_with_meta_sheet_datetimes_and_numbered_columns(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    meta = wb.active
    meta.title = "Meta"
    meta.append(["Publisher", "A Foundation"])
    sheet = wb.create_sheet("grants")
    sheet.append([f"  {h.upper()} " if i == 3 else h for i, h in enumerate(HEADER)])  # odd case/space
    sheet.append(["g1", "T", "gbp", 100, datetime(2020, 4, 1), datetime(2020, 5, 1), "GB-CHC-1", "R",
                  "GB-CHC-2", "F", "Lagos", "NG", "Accra", "GH", "Health", "Main"])
    sheet.append([None] * len(HEADER))  # a blank row is skipped, not rejected
    sheet.append(["g2", "T", "EUR", "2,500", 43922, None, "GB-CHC-1", "R", "GB-CHC-2", "F"])
    sheet.append([None, "no id", "GBP", 5, datetime(2020, 1, 1)])
    path = tmp_path / "book.xlsx"
    wb.save(path)

    assert giving360.detect(path.read_bytes()[: 64 * 1024])
    assert giving360.sniff_xlsx(path)
    records, rejections = _split(list(giving360.read(path)))
    assert [(r.record_id, r.field) for r in rejections] == [("'grants' row 5", "Identifier")]
    g1, g2 = records
    assert (g1.amount, g1.currency, g1.date, g1.start_date) == (100.0, "GBP", "2020-04-01", "2020-05-01")
    assert [(p.country, p.admin1_name) for p in g1.places] == [("NG", "Lagos"), ("GH", "Accra")]
    assert g1.source_sector == g1.theme_hint == "Health; Main"
    assert (g2.amount, g2.currency, g2.date) == (2500.0, "EUR", "2020-04-01")  # 43922 = Excel serial
    assert [p.country for p in g2.places] == ["GB"]


def test_workbook_without_360giving_titles(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["name", "amount"])
    path = tmp_path / "other.xlsx"
    wb.save(path)
    assert not giving360.sniff_xlsx(path)
    with pytest.raises(LoadError, match="360Giving column titles"):
        list(giving360.read(path))


def test_csv_with_json_path_headers_and_repeated_titles(tmp_path: Path) -> None:
    path = tmp_path / "paths.csv"
    path.write_text(
        "id\tamountAwarded\tcurrency\tawardDate\tfundingOrganization/0/id\trecipientOrganization/0/id\t"
        "beneficiaryLocation/0/countryCode\tbeneficiaryLocation/1/countryCode\n"
        "p1\t10\tGBP\t21/11/2017\tGB-CHC-1\tGB-CHC-2\tFR\tDE\n",
        encoding="utf-8",
    )
    [record] = list(giving360.read(path))
    assert isinstance(record, SourceRecord)
    assert (record.date, [p.country for p in record.places]) == ("2017-11-21", ["FR", "DE"])

    path = tmp_path / "repeated.csv"
    path.write_text(
        "Identifier,Amount Awarded,Currency,Award Date,Funding Org:Identifier,"
        "Beneficiary Location:Name,Beneficiary Location:Name\n"
        'r1,"1,000",GBP,2017-11-21,GB-CHC-1,Scotland,Wales\n',
        encoding="utf-8",
    )
    [record] = list(giving360.read(path))
    assert isinstance(record, SourceRecord) and record.amount == 1000.0
    assert [p.admin1_name for p in record.places] == ["Scotland", "Wales"]


def test_csv_without_titles_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "random.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(LoadError, match="360Giving column titles"):
        list(giving360.read(path))


def test_latin1_csv_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "Identifier;Title;Amount Awarded;Currency;Award Date;Funding Org:Name\n"
        "x1;Caf\u00e9 \u00a3;12;GBP;01/02/2018;Fonds\n".encode("cp1252")
    )
    [record] = list(giving360.read(path))
    assert isinstance(record, SourceRecord) and record.title == "Caf\u00e9 \u00a3"


def test_detect() -> None:
    package = shared_file("360giving", "power_to_change_a002400000nO46WAAS.json").read_bytes()
    assert giving360.detect(package[: 64 * 1024])
    assert giving360.detect(package[:300])  # cut anywhere: still a package
    assert giving360.detect(b'\xef\xbb\xbf {"version": "1.0", "meta": {"a": [1, {"b": 2}]}, "grants" : [')
    csv_head = ",".join(HEADER).encode() + b"\r\ng1,T,GBP,1\r\n"
    assert giving360.detect(csv_head)
    assert giving360.detect(b"\xef\xbb\xbf" + ";".join(HEADER).encode("cp1252") + b"\n")

    iati = shared_file("iati", "worldbank-sv.xml").read_bytes()[: 64 * 1024]
    fts = shared_file("ocha_fts", "custom-search-locationid-1-year-2020.json").read_bytes()[: 64 * 1024]
    fts_csv = shared_file("ocha_fts", "fts_incoming_funding_afg.csv").read_bytes()[: 64 * 1024]
    assert not giving360.detect(iati)
    assert not giving360.detect(fts)
    assert not giving360.detect(fts_csv)
    assert not giving360.detect(b"name,amount,currency\nx,1,GBP\n")
    assert not giving360.detect(b'{"data": {"grants": [1, 2]}}')  # not at the top level
    assert not giving360.detect(b'{"grants": 3}')
    assert not giving360.detect(b'{"note": "the grants", "x": ["grants"]}')
    assert not giving360.detect(b"PK\x03\x04 a zip without a workbook inside")


def test_nan_is_not_a_coordinate(tmp_path: Path) -> None:
    [record] = _read_json(
        tmp_path, _grant(beneficiaryLocation=[{"countryCode": "GB", "latitude": "NaN", "longitude": "1"}])
    )
    assert isinstance(record, SourceRecord)
    assert record.places[0].lat is None and not any(math.isnan(p.lon or 0) for p in record.places)
