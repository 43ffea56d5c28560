"""OECD CRS loader: the real extract checked against an independent pandas reading, plus small
hand-made files for each variant (bulk |-separated UTF-16, ,-separated extract, snake_case export)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from data_sources import crs, enrich, geography, schema
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord

from .conftest import shared_file

REAL = ("oecd_crs", "water_germany_crs_microdata.csv")
MILLION = 1_000_000.0


def _split(items) -> tuple[list[SourceRecord], list[Rejection]]:
    records, rejections = [], []
    for item in items:
        (rejections if isinstance(item, Rejection) else records).append(item)
    return records, rejections


def _read(path: Path, **kwargs) -> tuple[list[SourceRecord], list[Rejection]]:
    return _split(crs.read(path, **kwargs))


# --- the real extract ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, list[SourceRecord], list[Rejection]]:
    path = shared_file(*REAL)
    frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    records, rejections = _read(path)
    return frame, records, rejections


def test_real_file_counts_and_sums_match_an_independent_reading(real) -> None:
    frame, records, rejections = real
    assert rejections == []
    # Independent rules: a non-empty, non-zero cell is a record; amounts are USD millions.
    expected = {}
    for flow, column in (("commitment", "USD_Commitment_Defl"), ("disbursement", "USD_Disbursement_Defl")):
        values = pd.to_numeric(frame[column].replace("", None), errors="raise")
        used = values[values.notna() & (values != 0)]
        expected[flow] = (len(used), float(used.sum()) * MILLION)
    for flow, (count, total) in expected.items():
        mine = [r for r in records if r.flow_type == flow]
        assert len(mine) == count
        assert math.isclose(sum(r.amount for r in mine), total, rel_tol=1e-9)
        assert all(r.amount_usd == r.amount and r.currency == "USD" for r in mine)
    assert (expected["commitment"][0], expected["disbursement"][0]) == (5696, 3735)  # pinned once
    assert len({r.record_id for r in records}) == len(records)


def test_real_file_rows_pass_the_canonical_schema(real) -> None:
    _frame, records, _ = real
    rows = [row for record in records for row in enrich.canonical_rows(record, "f", 1)]
    frame = schema.validate(schema.coerce(pd.DataFrame(rows, columns=schema.COLUMN_NAMES)))
    assert len(frame) == len(records)  # one country, one sector per record
    assert set(frame["theme"]) == {"WASH"}
    assert frame["sector_code"].str.fullmatch(r"140\d\d").all()


def test_real_file_places_years_titles(real) -> None:
    frame, records, _ = real
    # Every recipient of this extract is a country: resolution rate over names and over records.
    names = frame["RecipientName"].unique()
    resolved = {n: geography.to_iso3(n) for n in names}
    unresolved = sorted(n for n, iso3 in resolved.items() if iso3 is None)
    assert unresolved == []
    assert len(names) == 118
    with_country = [r for r in records if r.places and r.places[0].country]
    assert len(with_country) / len(records) >= 0.95
    assert len(with_country) == len(records)

    # The file has no Year column: the year is CommitmentDate's, empty where there is none.
    flows = (frame["USD_Disbursement_Defl"].replace("", "0").astype(float) != 0).astype(int) + 1
    no_date = frame["CommitmentDate"] == ""
    assert sum(r.year is None for r in records) == int(flows[no_date].sum())
    by_year = frame.loc[~no_date, "CommitmentDate"].str[:4].astype(int)
    assert {r.year for r in records if r.year is not None} == set(by_year)

    # Only deflated columns: every record says it is in constant US dollars.
    assert all(r.title and r.title.endswith(crs.CONSTANT_PRICES_TAG) for r in records)
    first = records[0]
    assert (first.funder_id, first.funder_name, first.places[0].country) == ("XM-DAC-5", "Germany", "NER")
    assert (first.sectors[0].code, first.title) == ("14010", "TOWN WATER SUPPLY [constant USD]")
    assert first.amount == pytest.approx(23.3681 * MILLION)


def test_detect_real_and_other_formats() -> None:
    assert crs.detect(shared_file(*REAL).read_bytes()[: 64 * 1024])
    giving_csv = b"Identifier,Title,Currency,Amount Awarded,Award Date,Recipient Org:Name,Funding Org:Name\r\n"
    assert not crs.detect(giving_csv + b"g1,T,GBP,100,2020-01-01,R,F\r\n")
    assert not crs.detect(shared_file("iati", "worldbank-sv.xml").read_bytes()[: 64 * 1024])
    hxl = shared_file(
        "hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv"
    )
    assert not crs.detect(hxl.read_bytes()[: 64 * 1024])
    assert not crs.detect(shared_file("ocha_fts", "fts_incoming_funding_afg.csv").read_bytes()[: 64 * 1024])
    assert not crs.detect(shared_file("360giving", "esmee_grantnav-20180903134856.json").read_bytes()[:4096])
    assert not crs.detect(b"name,amount,currency\nx,1,USD\n")
    assert not crs.detect(b"")
    # Prose that names CRS columns (the shared data's SOURCES.md does) is not a header row.
    assert not crs.detect(shared_file("SOURCES.md").read_bytes()[: 64 * 1024])
    # The variants: snake_case, UTF-8 with BOM, UTF-16 LE with and without BOM, latin-1.
    assert crs.detect(b"year,donor_name,recipient_name,usd_disbursement\n2020,X,Kenya,1\n")
    assert crs.detect("\ufeffDonorName;RecipientName;USD_Commitment\n".encode())
    assert crs.detect("Year|DonorName|RecipientName|USD_Disbursement\r\n".encode("utf-16"))
    assert crs.detect("Year\tDonorName\tRecipientName\tUSD_Disbursement\r\n".encode("utf-16-le"))
    assert crs.detect("DonorName;RecipientName;USD_Commitment\nBelgique;Côte d'Ivoire;1\n".encode("latin-1"))


# --- hand-made files ----------------------------------------------------------------------------

BULK_HEADER = [
    "Year", "DonorCode", "DonorName", "AgencyName", "CRSid", "ProjectNumber", "RecipientCode", "RecipientName",
    "FlowName", "USD_Commitment", "USD_Disbursement", "USD_Commitment_Defl", "USD_Disbursement_Defl",
    "ProjectTitle", "ShortDescription", "LongDescription", "PurposeCode", "PurposeName", "SectorCode",
    "SectorName", "ChannelName", "ChannelReportedName", "ExpectedStartDate", "CompletionDate", "CommitmentDate",
]


def _bulk_row(**values: str) -> list[str]:
    return [values.get(name, "") for name in BULK_HEADER]


def test_bulk_pipe_utf16_file(tmp_path: Path) -> None:
    rows = [
        BULK_HEADER,
        _bulk_row(Year="2019", DonorCode="5", DonorName="Germany", AgencyName="KfW", CRSid="2019000123",
                  RecipientCode="248", RecipientName="Kenya", USD_Commitment="1.5", USD_Disbursement="0.25",
                  USD_Commitment_Defl="1.6", USD_Disbursement_Defl="0.27", ProjectTitle="Water for towns",
                  ShortDescription='TOWN "WATER', LongDescription='Piped water, "phase 2', PurposeCode="14021",
                  PurposeName="Water supply - large systems", SectorCode="140",
                  SectorName="I.4. Water Supply & Sanitation", ChannelName="Public Sector Institutions",
                  ChannelReportedName="Water Services Trust Fund", ExpectedStartDate="2019-03-01 00:00:00",
                  CompletionDate="2022-12-31", CommitmentDate="2019-06-30"),
        _bulk_row(Year="2019", DonorCode="5", DonorName="Germany", CRSid="2019000124", RecipientCode="289",
                  RecipientName="South of Sahara, regional", USD_Commitment="", USD_Disbursement="0.1",
                  ShortDescription="SAHEL WATER", PurposeCode="14010",
                  PurposeName="Water sector policy and administrative management", ChannelName="UNICEF"),
        _bulk_row(Year="2019", DonorCode="5", DonorName="Germany", CRSid="2019000125", RecipientCode="998",
                  RecipientName="Developing countries, unspecified", USD_Commitment="0", USD_Disbursement="0.0"),
    ]
    path = tmp_path / "CRS 2019 data.txt"
    # The OECD bulk files: |-separated, unquoted, UTF-16 LE with a BOM, CRLF.
    path.write_bytes("\r\n".join("|".join(r) for r in rows).encode("utf-16") + "\r\n".encode("utf-16-le"))
    assert path.read_bytes()[:2] == b"\xff\xfe"
    assert crs.detect(path.read_bytes()[:4096])

    records, rejections = _read(path)
    assert rejections == []
    commitment, disbursement, regional = records
    assert commitment.record_id.startswith("2019000123-2019-") and commitment.record_id.endswith("#c")
    assert disbursement.record_id == commitment.record_id[:-1] + "d"
    # Current prices are preferred when present; USD millions by default for CRS column names.
    assert (commitment.flow_type, commitment.amount, commitment.amount_usd) == ("commitment", 1.5e6, 1.5e6)
    assert (disbursement.flow_type, disbursement.amount) == ("disbursement", 250_000.0)
    assert commitment.title == "Water for towns"  # no constant-price tag
    assert commitment.description == 'Piped water, "phase 2'  # stray quotes are text in bulk files
    assert (commitment.funder_id, commitment.funder_name) == ("XM-DAC-5", "Germany")
    assert commitment.recipient_name == "Water Services Trust Fund"
    assert [(p.country, p.region) for p in commitment.places] == [("KEN", None)]
    assert [(s.code, s.name) for s in commitment.sectors] == [("14021", "Water supply - large systems")]
    assert commitment.source_sector == "14021 Water supply - large systems"
    assert (commitment.year, commitment.date, commitment.start_date, commitment.end_date) == (
        2019, "2019-06-30", "2019-03-01", "2022-12-31"
    )
    assert disbursement.date is None  # CRS gives the year of a disbursement, not its date
    # Regional recipient: a region, not a country; the channel name is the recipient.
    assert regional.flow_type == "disbursement" and regional.record_id.startswith("2019000124-2019-")
    assert [(p.country, p.region) for p in regional.places] == [(None, "South of Sahara, regional")]
    assert (regional.recipient_name, regional.title) == ("UNICEF", "SAHEL WATER")
    # The row with zero amounts gives nothing.
    [row] = enrich.canonical_rows(regional, "f", 1)
    assert (row["geo_level"], row["region"], row["country_iso3"]) == ("region", "South of Sahara, regional", None)


def test_regional_and_former_recipients(tmp_path: Path) -> None:
    path = tmp_path / "regions.csv"
    path.write_text(
        "Year;DonorCode;DonorName;RecipientCode;RecipientName;USD_Disbursement\n"
        "2005;12;United Kingdom;998;Developing countries, unspecified;1\n"
        "2005;12;United Kingdom;9999;Bilateral, unspecified;1\n"
        "2005;12;United Kingdom;89;;1\n"
        "2005;12;United Kingdom;61;Serbia and Montenegro;1\n"
        "2005;12;United Kingdom;730;China (People's Republic of);1\n",
        encoding="utf-8",
    )
    records, rejections = _read(path)
    assert rejections == []
    assert [(p.country, p.region) for r in records for p in r.places] == [
        (None, "Developing countries, unspecified"),
        (None, "Bilateral, unspecified"),
        (None, "Europe, regional"),  # the DAC region code's name when the name is missing
        (None, "Serbia and Montenegro"),  # no current country: kept as the place's text
        ("CHN", None),
    ]
    assert all(r.funder_id == "XM-DAC-12" for r in records)


def test_comma_extract_with_units_note_and_quoted_values(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv"
    path.write_text(
        "OECD.Stat CRS extract, amounts in USD thousands\n"
        "\n"
        "Year,DonorName,RecipientName,PurposeCode,PurposeName,USD_Commitment,USD_Disbursement\n"
        '2020,France,"Congo, Dem. Rep.",12220,Basic health care,"1,234.5",10\n',
        encoding="utf-8-sig",
    )
    assert crs.detect(path.read_bytes())
    records, rejections = _read(path)
    assert rejections == []
    commitment, disbursement = records
    assert (commitment.amount, disbursement.amount) == (1_234_500.0, 10_000.0)
    assert commitment.places[0].country == "COD"
    assert commitment.funder_id is None and commitment.funder_name == "France"
    [row] = enrich.canonical_rows(commitment, "f", 1)
    assert (row["sector_code"], row["theme"]) == ("12220", "Health")


def test_unit_in_column_name_wins_over_the_default(tmp_path: Path) -> None:
    path = tmp_path / "named_units.tsv"
    path.write_text(
        "Year\tDonorName\tRecipientName\tUSD_Commitment (USD thousands)\tUSD_Disbursement_Defl (millions)\n"
        "2018\tJapan\tViet Nam\t2\t3\n",
        encoding="utf-8",
    )
    commitment, disbursement = _read(path)[0]
    assert commitment.amount == 2_000.0 and commitment.title is None
    assert disbursement.amount == 3_000_000.0 and disbursement.title == crs.CONSTANT_PRICES_TAG


def test_snake_case_export_is_plain_usd_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "oda_export.csv"
    path.write_text(
        "year,donor_code,donor_name,crs_id,recipient_code,recipient_name,purpose_code,purpose_name,"
        "usd_commitment,usd_disbursement,usd_disbursement_deflated\n"
        "2021,302,United States,2021001,625,Afghanistan,72010,Material relief assistance and services,"
        "2500000,1000000.5,900000\n",
        encoding="utf-8",
    )
    assert crs.detect(path.read_bytes())
    commitment, disbursement = _read(path)[0]
    assert (commitment.amount, disbursement.amount) == (2_500_000.0, 1_000_000.5)
    assert disbursement.title is None  # the current-price column is used, so no tag
    assert (commitment.funder_id, commitment.places[0].country) == ("XM-DAC-302", "AFG")
    assert commitment.record_id.startswith("2021001-2021-")
    # The caller can say the export still holds the OECD's millions.
    commitment, _ = _read(path, units=1e6)[0]
    assert commitment.amount == 2.5e12
    with pytest.raises(ValueError):
        list(crs.read(path, units=0))


def test_bad_amounts_and_years_are_rejected_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "Year;DonorName;RecipientName;USD_Commitment;USD_Disbursement\n"
        "2015;Norway;Malawi;n/a;0,5\n"  # bad commitment; decimal comma in a ;-file
        "20x5;Norway;Malawi;1;1\n"
        ";Norway;Malawi;1;1\n"
        "2015;Norway;Malawi;1e999;\n"
        "2015;Norway;Malawi;1;1;extra\n",
        encoding="utf-8",
    )
    records, rejections = _read(path)
    assert [(r.flow_type, r.amount) for r in records] == [("disbursement", 500_000.0)]
    assert [(r.field, r.reason.split(": ", 1)[1]) for r in rejections] == [
        ("USD_Commitment", "not a number: 'n/a'"),
        ("Year", "not a year in 1900-2100: '20x5'"),
        ("Year", "missing"),
        ("USD_Commitment", "not a finite number: '1e999'"),
        ("row", "6 cells, the header has 5"),
    ]
    assert rejections[0].record_id.endswith("#c") and rejections[0].reason.startswith("line 2:")
    assert records[0].record_id == rejections[0].record_id[:-1] + "d"


def test_deflated_only_where_the_current_column_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "Year,DonorName,RecipientName,ProjectTitle,USD_Commitment,USD_Commitment_Defl,USD_Disbursement_Defl\n"
        "2010,Sweden,Uganda,Roads,1,2,3\n"
        "2010,Sweden,Uganda,Roads,,2,\n",  # an empty current cell does not fall back to the deflated one
        encoding="utf-8",
    )
    records, rejections = _read(path)
    assert rejections == []
    assert [(r.flow_type, r.amount, r.title) for r in records] == [
        ("commitment", 1e6, "Roads"),
        ("disbursement", 3e6, "Roads [constant USD]"),
    ]


def test_no_year_column_uses_the_commitment_date(tmp_path: Path) -> None:
    path = tmp_path / "noyear.csv"
    path.write_text(
        ";DonorName;RecipientName;PurposeName;SectorCode;USD_Commitment_Defl;CommitmentDate\n"
        '0;Germany;Niger;Basic sanitation;140;1;"2004-12-31"\n'
        "1;Germany;Niger;Basic sanitation;140;1;\n"
        "2;Germany;Niger;Basic sanitation;140;1;31.12.2005\n"
        "3;Germany;Niger;Something else;140;1;2006-01-01\n"
        "4;Germany;Niger;Basic sanitation;140;1;sometime\n",
        encoding="utf-8",
    )
    records, rejections = _read(path)
    assert [(r.year, r.date) for r in records] == [
        (2004, "2004-12-31"), (None, None), (2005, None), (2006, "2006-01-01")
    ]
    # A purpose name of the DAC tables gives the 5-digit code; else the 3-digit sector code.
    assert [s.code for s in records[0].sectors] == ["14032"]
    assert [(s.code, s.name) for s in records[3].sectors] == [("140", None)]
    assert [(r.field, r.reason) for r in rejections] == [
        ("CommitmentDate", "line 6: no year in 1900-2100 in 'sometime'")
    ]


def test_record_ids_identical_rows_and_column_order(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text(
        "Year,DonorName,RecipientName,USD_Commitment\n2012,Italy,Tunisia,1\n2012,Italy,Tunisia,1\n",
        encoding="utf-8",
    )
    b = tmp_path / "b.csv"
    b.write_text("USD_Commitment;RecipientName;DonorName;Year\n1;Tunisia;Italy;2012\n", encoding="utf-8")
    first, second = _read(a)[0]
    [other] = _read(b)[0]
    assert second.record_id == first.record_id[:-2] + "~2#c"
    assert other.record_id == first.record_id  # the same row in another file: the same record
    assert [r.record_id for r in _read(a)[0]] == [first.record_id, second.record_id]  # stable


def test_latin1_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("Year;DonorName;RecipientName;USD_Commitment\n2001;Belgique;Côte d'Ivoire;2\n".encode("cp1252"))
    assert crs.detect(path.read_bytes())
    [record] = _read(path)[0]
    assert record.places[0].country == "CIV"


def test_file_level_errors(tmp_path: Path) -> None:
    path = tmp_path / "noamount.csv"
    path.write_text("DonorName;RecipientName;PurposeCode\nGermany;Niger;14010\n", encoding="utf-8")
    assert crs.detect(path.read_bytes())
    with pytest.raises(LoadError, match="no amount column") as info:
        list(crs.read(path))
    assert info.value.file == str(path)

    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(LoadError, match="no CRS header"):
        list(crs.read(path))

    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        list(crs.read(path))
    with pytest.raises(LoadError, match="cannot open"):
        list(crs.read(tmp_path / "missing.txt"))
