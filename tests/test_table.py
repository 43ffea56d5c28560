"""Generic table loader: a realistic funder export, read as CSV and XLSX with the shipped example
mapping (docs/example-mapping.toml) and with constants-only variants, checked against counts and
sums computed here independently; and every kind of mapping error."""

from __future__ import annotations

import csv
import math
import sys
import tomllib
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from data_sources import enrich, schema, table
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord

EXAMPLE_MAPPING = Path(__file__).resolve().parents[1] / "docs" / "example-mapping.toml"

# The Example Foundation's grants export, as its system writes it (the columns the example maps,
# plus a "Notes" column the mapping ignores). Text cells exactly as in the CSV.
HEADER = [
    "Grant ref", "Funder", "Funder ID", "Organisation", "Charity number", "Amount", "Currency",
    "Date awarded", "End date", "Country", "Region", "Lat", "Lon", "DAC code", "Programme", "Project",
    "Summary", "Notes",
]  # fmt: skip
FOUNDATION = ("Example Foundation", "GB-CHC-1000001")
ROWS: list[list[str]] = [
    ["EF-2023-001", *FOUNDATION, "Water for Life Kenya", "1123456", "12,500", "GBP", "05/01/2023", "31/12/2024",
     "Kenya", "Nairobi", "", "", "14030", "Water", "Boreholes in Kibera", "Two boreholes with hand pumps", ""],
    ["EF-2023-002", *FOUNDATION, "Aqua East Africa", "", "8,000.50", "USD", "14/02/2023", "",
     "Kenya; Uganda", "Nairobi; Kampala", "", "", "14030", "Water", "Handwashing stations", "", "co-funded"],
    ["EF-2023-003", "", "", "Sahel Health Alliance", "", "30,000", "EUR", "01/03/2023", "ongoing",
     "Mali; Niger; Burkina Faso", "", "", "", "12220", "Health", "Mobile clinics", "Clinics in three countries", ""],
    ["EF-2023-004", *FOUNDATION, "Missing Money Org", "", "", "GBP", "10/03/2023", "",
     "Kenya", "", "", "", "", "", "Amount to follow", "", "amount not yet agreed"],
    ["EF-2023-005", *FOUNDATION, "Nairobi Youth Trust", "", "1,250,000", "KES", "22/03/2023", "",
     "Kenya", "", "-1.2921", "36.8219", "11220", "Education", "Homework clubs", "", ""],
    ["EF-2023-006", *FOUNDATION, "Glasgow Community Food", "SC012345", "4,200", "", "03/04/2023", "",
     "United Kingdom", "Scotland", "", "", "", "Food poverty", "Community pantry", "", ""],
    ["EF-2023-007", "Partner Trust", "GB-CHC-2000002", "Pan-African Water Network", "", "50,000", "usd",
     "18/04/2023", "", "Africa, regional", "", "", "", "14030", "Water", "Regional learning network", "", ""],
    ["EF-2023-008", *FOUNDATION, "Learning Together Uganda", "", "15,000", "GBP", "02/05/2023", "",
     "Uganda", "Gulu", "2.7724", "32.2881", "11220; 14030", "Education; Water", "School latrines", "", ""],
    ["EF-2023-009", *FOUNDATION, "Dhaka Clean Water", "", "9,999.99", "USD", "30/05/2023", "",
     "Bangladesh", "Dhaka", "", "", "14030", "Water", "Water kiosks", "", ""],
    ["EF-2023-010", *FOUNDATION, "Typo Dates Ltd", "", "7,500", "EUR", "31/02/2023", "",
     "Ghana", "", "", "", "", "Health", "Clinic refurbishment", "", "date needs checking"],
    [""] * len(HEADER),  # a blank line in the export: skipped, not counted
    ["EF-2024-001", *FOUNDATION, "Lake Victoria Fisheries", "", "20,000", "GBP", "15/01/2024", "",
     "Kenya; Tanzania", "", "", "", "31310", "Livelihoods", "Fish farming co-operatives", "", ""],
    ["EF-2024-002", *FOUNDATION, "Mombasa Girls School", "", "2,000,000", "KES", "01/02/2024", "",
     "Kenya", "Mombasa", "", "", "11220", "Education", "Scholarships", "", ""],
    ["EF-2024-003", *FOUNDATION, "Addis Health Workers", "", "3,500", "EUR", "12/03/2024", "",
     "Ethiopia", "", "", "", "12220", "Health", "Nurse training", "", ""],
    ["EF-2024-004", *FOUNDATION, "Tigray Relief", "", "600", "USD", "12/03/2024", "",
     "Ethiopia", "", "", "", "", "Emergency", "Emergency water trucking", "", ""],
    ["EF-2024-005", *FOUNDATION, "Open Data Collective", "", "45,000", "GBP", "01/04/2024", "",
     "Global", "", "", "", "", "Research", "Funding data standards", "", ""],
]  # fmt: skip
EXPECTED_REJECTIONS = {
    "example-foundation:EF-2023-004": "Amount",
    "example-foundation:EF-2023-010": "Date awarded",
}


# --- writing the test files ------------------------------------------------------------------


def _write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",",
               encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_xlsx(path: Path, header: list[str], rows: list[list[Any]], sheet: str = "Grants",
                above: list[list[Any]] | None = None) -> Path:
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "Read me"  # the grants are not on the first sheet: [table] sheet picks them
    notes.append(["Exported from the grants system"])
    ws = wb.create_sheet(sheet)
    for row in above or []:
        ws.append(row)
    ws.append(header)
    for row in rows:
        ws.append([None if v == "" else v for v in row])
    wb.save(path)
    return path


def _as_spreadsheet_cells(rows: list[list[str]]) -> list[list[Any]]:
    """The rows as an XLSX export stores them: real dates and numbers where they are valid."""
    out = []
    for n, row in enumerate(rows):
        cells: list[Any] = list(row)
        try:
            cells[7] = datetime.strptime(row[7], "%d/%m/%Y")
        except ValueError:
            pass  # the impossible date stays text, as a system would export it
        if row[5] and n % 2 == 0:
            cells[5] = float(row[5].replace(",", ""))  # every other amount a number, the rest text
        for i in (11, 12):
            cells[i] = float(row[i]) if row[i] else ""
        out.append(cells)
    return out


@pytest.fixture
def export_csv(tmp_path: Path) -> Path:
    return _write_csv(tmp_path / "grants-export.csv", HEADER, ROWS)


@pytest.fixture
def export_xlsx(tmp_path: Path) -> Path:
    return _write_xlsx(tmp_path / "grants-export.xlsx", HEADER, _as_spreadsheet_cells(ROWS))


def _example(**changes: dict[str, Any]) -> dict[str, Any]:
    """The example mapping as a dict, with some sections' keys changed (None deletes a key)."""
    data = tomllib.loads(EXAMPLE_MAPPING.read_text(encoding="utf-8"))
    for section, keys in changes.items():
        data.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                data[section].pop(key, None)
            else:
                data[section][key] = value
    return data


# --- independent expectations ----------------------------------------------------------------


def _independent(path: Path) -> tuple[list[str], dict[str, float]]:
    """Grant refs and per-currency sums read straight from the CSV with pandas, not via the loader."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame[(frame != "").any(axis=1)]
    ids, sums = [], defaultdict(float)
    for row in frame.to_dict("records"):
        ids.append(row["Grant ref"])
        try:
            datetime.strptime(row["Date awarded"], "%d/%m/%Y")
        except ValueError:
            continue
        if not row["Amount"]:
            continue
        sums[(row["Currency"] or "GBP").upper()] += float(row["Amount"].replace(",", ""))
    return ids, dict(sums)


def _split(items: list[SourceRecord | Rejection]) -> tuple[list[SourceRecord], list[Rejection]]:
    records = [i for i in items if isinstance(i, SourceRecord)]
    rejections = [i for i in items if isinstance(i, Rejection)]
    assert len(records) + len(rejections) == len(items)
    return records, rejections


def _canonical(records: list[SourceRecord]) -> pd.DataFrame:
    """All canonical rows of the records, validated against the schema; per-record invariants checked."""
    rows: list[dict[str, object]] = []
    for record in records:
        own = enrich.canonical_rows(record, "f", 1)
        assert math.isclose(sum(r["allocation_share"] for r in own), 1.0, rel_tol=1e-12)
        assert math.isclose(sum(r["amount"] for r in own), record.amount, rel_tol=1e-12, abs_tol=1e-9)
        rows.extend(own)
    frame = schema.coerce(pd.DataFrame(rows, columns=schema.COLUMN_NAMES))
    return schema.validate(frame)


# --- the example mapping on the example export -------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_example_mapping_reads_the_export(kind: str, export_csv: Path, export_xlsx: Path) -> None:
    ids, sums = _independent(export_csv)
    path = export_csv if kind == "csv" else export_xlsx
    records, rejections = _split(list(table.read(path, EXAMPLE_MAPPING)))

    assert len(records) + len(rejections) == len(ids) == 15
    assert {r.record_id: r.field for r in rejections} == EXPECTED_REJECTIONS
    assert sorted(r.record_id for r in records) == sorted(
        f"example-foundation:{i}" for i in ids if f"example-foundation:{i}" not in EXPECTED_REJECTIONS
    )
    got: dict[str, float] = defaultdict(float)
    for record in records:
        got[record.currency] += record.amount
    assert got.keys() == sums.keys() == {"GBP", "USD", "EUR", "KES"}
    for currency, total in sums.items():
        assert got[currency] == pytest.approx(total, rel=1e-12)

    frame = _canonical(records)
    assert set(frame["source"]) == {"table"} and set(frame["flow_type"]) == {"grant"}
    by_id = {r.record_id.split(":", 1)[1]: r for r in records}
    assert by_id["EF-2023-001"].date == "2023-01-05" and by_id["EF-2023-001"].end_date == "2024-12-31"
    assert by_id["EF-2023-003"].end_date is None  # "ongoing" does not cost the grant
    assert by_id["EF-2023-003"].funder_name == "Example Foundation"  # empty cell -> constant
    assert by_id["EF-2023-006"].currency == "GBP"  # empty cell -> constant
    assert by_id["EF-2023-007"].funder_name == "Partner Trust" and by_id["EF-2023-007"].currency == "USD"
    assert by_id["EF-2023-001"].funder_type == "Foundation"
    assert by_id["EF-2023-001"].recipient_id == "1123456"

    rows = frame.set_index(["record_id", "alloc"])
    two = rows.loc["example-foundation:EF-2023-002"]
    assert list(zip(two["country_iso3"], two["admin1_name"], strict=True)) == [("KEN", "Nairobi"), ("UGA", "Kampala")]
    assert list(two["allocation_share"]) == [0.5, 0.5]
    three = rows.loc["example-foundation:EF-2023-003"]
    assert sorted(three["country_iso3"]) == ["BFA", "MLI", "NER"] and set(three["theme"]) == {"Health"}
    point = rows.loc["example-foundation:EF-2023-005"].iloc[0]
    assert (point["geo_level"], point["lat"], point["lon"]) == ("point", -1.2921, 36.8219)
    regional = rows.loc["example-foundation:EF-2023-007"].iloc[0]
    assert (regional["country_iso3"], regional["region"], regional["geo_level"]) == (None, "Africa, regional", "region")
    sectors = rows.loc["example-foundation:EF-2023-008"]
    assert list(sectors["sector_code"]) == ["11220", "14030"] and list(sectors["theme"]) == ["Education", "WASH"]
    scotland = rows.loc["example-foundation:EF-2023-006"].iloc[0]
    assert (scotland["country_iso3"], scotland["admin1_name"]) == ("GBR", "Scotland")


def test_csv_with_semicolons_cp1252_and_decimal_commas(tmp_path: Path) -> None:
    header = ["Référence", "Montant (k€)", "Devise", "Date", "Pays", "Bailleur"]
    rows = [
        ["FR-1", "12.500,50", "EUR", "05.01.2023", "Côte d'Ivoire", "Fondation Exemple"],
        ["FR-2", "1.000", "EUR", "06.01.2023", "Senegal; Mali", "Fondation Exemple"],
        ["FR-3", "0,5", "XOF", "07.01.2023", "Burkina Faso", "Fondation Exemple"],
        ["FR-4", "12,500.00", "EUR", "08.01.2023", "Mali", "Fondation Exemple"],
    ]
    path = _write_csv(tmp_path / "export.csv", header, rows, delimiter=";", encoding="cp1252")
    mapping = tmp_path / "fondation.toml"
    mapping.write_text(
        '[columns]\nid = "Référence"\namount = "Montant (k€)"\ncurrency = "Devise"\ndate = "Date"\n'
        'country = "Pays"\nfunder = "Bailleur"\n\n'
        '[options]\ndecimal_separator = ","\ndate_format = "%d.%m.%Y"\namount_multiplier = 1000\n',
        encoding="utf-8",
    )
    records, rejections = _split(list(table.read(path, mapping)))
    assert [(r.record_id, r.amount) for r in records] == [
        ("fondation:FR-1", 12_500_500.0), ("fondation:FR-2", 1_000_000.0), ("fondation:FR-3", 500.0),
    ]
    assert [(r.record_id, r.field) for r in rejections] == [("fondation:FR-4", "Montant (k€)")]
    assert 'decimal_separator' not in rejections[0].reason  # a point in a decimal-comma table
    assert records[1].places[0].country == "Senegal" and records[1].date == "2023-01-06"
    frame = _canonical(records)
    assert set(frame["country_iso3"]) == {"CIV", "SEN", "MLI", "BFA"}


# --- constants-only variants --------------------------------------------------------------------


def test_constants_fill_fields_the_table_does_not_have(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "small-fund.csv", ["Ref", "Value (thousands)", "Where"], [
        ["A1", "12.5", "Kenya"],
        ["A2", "3", "Uganda; Rwanda"],
        ["A3", "", "Kenya"],
        ["A4", "7", ""],
    ])
    mapping = {
        "table": {"source_name": "small-fund"},
        "columns": {"id": "Ref", "amount": "Value (thousands)", "country": "Where"},
        "constants": {"funder": "Small Fund", "currency": "usd", "year": 2022, "flow_type": "disbursement",
                      "sector": 14030},
        "options": {"amount_multiplier": 1000},
    }
    records, rejections = _split(list(table.read(path, mapping)))
    assert [(r.record_id, r.amount) for r in records] == [
        ("small-fund:A1", 12_500.0), ("small-fund:A2", 3_000.0), ("small-fund:A4", 7_000.0),
    ]
    assert [(r.record_id, r.field, r.reason) for r in rejections] == [("small-fund:A3", "Value (thousands)", "missing")]
    for record in records:
        assert (record.funder_name, record.currency, record.year, record.date, record.flow_type) == (
            "Small Fund", "USD", 2022, None, "disbursement",
        )
    frame = _canonical(records)
    assert set(frame["sector_code"]) == {"14030"} and set(frame["theme"]) == {"WASH"}
    assert list(frame[frame["record_id"] == "small-fund:A2"]["country_iso3"]) == ["UGA", "RWA"]
    assert frame[frame["record_id"] == "small-fund:A4"]["geo_level"].tolist() == ["unknown"]


def test_xlsx_only_amounts_with_everything_else_constant(tmp_path: Path) -> None:
    path = _write_xlsx(tmp_path / "payments.xlsx", ["Paid"], [[100], ["2,500"], [None], [0.5]], sheet="Data",
                       above=[["Payments 2021"], []])
    mapping = {
        "table": {"header_row": 3, "sheet": " data"},
        "columns": {"amount": "paid "},  # titles match case- and whitespace-insensitively
        "constants": {"funder": "One Funder", "currency": "GBP", "date": "2021-06-30", "country": "GB"},
    }
    records, rejections = _split(list(table.read(path, mapping)))
    assert rejections == []
    assert [r.amount for r in records] == [100.0, 2500.0, 0.5]
    # No id column and no source_name: ids are the data file's stem, name and spreadsheet row.
    assert [r.record_id for r in records] == [f"payments:payments.xlsx:row {n}" for n in (4, 5, 7)]
    assert {(r.date, r.year) for r in records} == {("2021-06-30", 2021)}
    assert set(_canonical(records)["country_iso3"]) == {"GBR"}


def test_year_column_when_there_is_no_date(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "t.csv", ["Year", "Amount", "Date"], [
        ["2019", "10", ""], ["", "20", "2020-02-01T10:00:00"], ["19", "30", ""], ["", "40", ""],
    ])
    mapping = {"columns": {"year": "Year", "amount": "Amount", "date": "Date"},
               "constants": {"funder": "F", "currency": "EUR"}}
    records, rejections = _split(list(table.read(path, mapping)))
    assert [(r.year, r.date) for r in records] == [(2019, None), (2020, "2020-02-01")]
    assert [(r.field, r.reason) for r in rejections] == [
        ("Year", "not a year: '19'"), ("Date", "missing: the row has no date and no year"),
    ]


def test_bad_cells_are_rejected_naming_the_column(tmp_path: Path) -> None:
    header = ["ID", "Amount", "Cur", "Date", "Country", "Region", "Lat", "Lon", "DAC", "Type", "Funder"]
    rows = [
        ["1", "1,000", "GBP", "2023-01-01", "Kenya; Uganda", "Nairobi; Kampala; Gulu", "", "", "", "", "F"],
        ["2", "1,000", "POUNDS", "2023-01-01", "", "", "", "", "", "", "F"],
        ["3", "1,000", "GBP", "2023-01-01", "", "", "91", "10", "", "", "F"],
        ["4", "1,000", "GBP", "2023-01-01", "", "", "1.5", "", "", "", "F"],
        ["5", "1,000", "GBP", "2023-01-01", "", "", "", "", "Water", "", "F"],
        ["6", "1,000", "GBP", "2023-01-01", "", "", "", "", "", "loan", "F"],
        ["7", "lots", "GBP", "2023-01-01", "", "", "", "", "", "", "F"],
        ["8", "1,000", "GBP", "1850-01-01", "", "", "", "", "", "", "F"],
        ["9", "1,000", "GBP", "2023-01-01", "", "", "", "", "", "", ""],
        ["", "1,000", "GBP", "2023-01-01", "", "", "", "", "", "", "F"],
        ["12", "-500", "gbp", "2023-01-01", "", "Gulu", "", "", "14030 - Basic drinking water", "Disbursement", "F"],
        ["12", "2,000", "GBP", "2023-01-01", "", "", "", "", "", "", "F"],
    ]
    path = _write_csv(tmp_path / "t.csv", header, rows)
    keys = ["id", "amount", "currency", "date", "country", "place", "latitude", "longitude", "sector", "flow_type",
            "funder"]
    mapping = {"table": {"source_name": "x"}, "columns": dict(zip(keys, header, strict=True))}
    records, rejections = _split(list(table.read(path, mapping)))
    assert [(r.record_id, r.field) for r in rejections] == [
        ("x:1", "Region"), ("x:2", "Cur"), ("x:3", "Lat"), ("x:4", "Lon"), ("x:5", "DAC"), ("x:6", "Type"),
        ("x:7", "Amount"), ("x:8", "Date"), ("x:9", "Funder"), ("row 11", "ID"), ("x:12", "ID"),
    ]
    assert rejections[0].reason == "3 places for 2 countries; give one place per country, or one country"
    assert rejections[-1].reason == "duplicate id (first at row 12)"
    assert "not a DAC purpose code" in rejections[4].reason and "sector_text" in rejections[4].reason
    [good] = records
    assert (good.amount, good.currency, good.flow_type) == (-500.0, "GBP", "disbursement")
    assert (good.sectors[0].code, good.sectors[0].name) == ("14030", "Basic drinking water")
    assert good.places[0].admin1_name == "Gulu"


# --- the mapping and its errors -----------------------------------------------------------------


def test_detect_is_always_false(export_csv: Path) -> None:
    assert table.detect(export_csv.read_bytes()) is False
    assert table.detect(b"") is False


def test_read_without_a_mapping_says_how(export_csv: Path) -> None:
    with pytest.raises(LoadError) as err:
        table.read(export_csv)
    assert err.value.file == str(export_csv)
    assert "--format table --mapping MAPPING.toml" in str(err.value)


def _mapping_file(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = '[columns]\namount = "Amount"\ndate = "Date awarded"\n[constants]\nfunder = "F"\ncurrency = "GBP"\n'


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = _mapping_file(tmp_path, BASE.replace("[constants]", 'recipeint = "Organisation"\n[constants]'))
    with pytest.raises(table.MappingError) as err:
        table.load_mapping(path)
    assert str(err.value) == f"{path}: unknown key 'recipeint' in [columns]; did you mean 'recipient'?"
    assert (err.value.file, err.value.field) == (str(path), "columns.recipeint")


@pytest.mark.parametrize(("data", "message"), [
    ({"colums": {}}, "unknown section [colums]; did you mean [columns]?"),
    ({"funder": "F"}, "key 'funder' is outside any section; put it under [columns] or [constants]"),
    ({"constants": {"source_name": "x"}}, "unknown key 'source_name' in [constants]; 'source_name' belongs in [table]"),
    ({"constants": {"id": "x"}}, "unknown key 'id' in [constants]; 'id' belongs in [columns]"),
    ({"options": {"zzz": 1}}, "unknown key 'zzz' in [options] (keys are: date_format, amount_multiplier"),
])
def test_misplaced_and_unknown_names(data: dict[str, Any], message: str) -> None:
    with pytest.raises(table.MappingError, match="^mapping: " + _re(message)):
        table.parse_mapping(data)


def _re(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize(("drop", "message"), [
    ({"columns": {"amount": None}}, "no amount: map a column ([columns] amount = \"Column title\") or give a constant"),
    ({"constants": {"currency": None}, "columns": {"currency": None}}, "no currency: map a column"),
    ({"constants": {"funder": None}, "columns": {"funder": None}}, "no funder: map a column"),
    ({"columns": {"date": None}}, "no date: map a date column"),
])
def test_missing_required_fields(drop: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(table.MappingError) as err:
        table.parse_mapping(_example(**drop))
    assert message in str(err.value)


def test_a_constant_year_is_enough_for_the_date() -> None:
    mapping = table.parse_mapping(_example(columns={"date": None}, constants={"year": 2020}))
    assert mapping.constants["year"] == 2020 and "date" not in mapping.columns


@pytest.mark.parametrize(("changes", "message"), [
    ({"constants": {"flow_type": "grants"}},
     "[constants] flow_type 'grants' is not one of: commitment, disbursement, expenditure, pledge, grant, presence; "
     "did you mean 'grant'?"),
    ({"constants": {"currency": "pounds"}}, "[constants] currency must be a three-letter ISO 4217 code"),
    ({"constants": {"year": "2020"}}, "[constants] year must be a year from 1900 to 2100, not '2020'"),
    ({"constants": {"amount": "12"}}, "[constants] amount must be a number, not '12'"),
    ({"constants": {"sector": "Water"}}, "[constants] sector must be a DAC purpose code"),
    ({"constants": {"date": "yesterday"}}, "[constants] date must be a date (2024-03-31)"),
    ({"columns": {"amount": 5}}, "[columns] amount must be a column title (a non-empty text), not 5"),
    ({"columns": {"longitude": None}}, "[columns] has latitude but no longitude: give both"),
    ({"table": {"header_row": 0}}, "[table] header_row must be a row number (1 or more), not 0"),
    ({"table": {"header_row": True}}, "[table] header_row must be a row number"),
    ({"table": {"delimiter": ",;"}}, "[table] delimiter must be one character"),
    ({"table": {"encoding": "klingon"}}, "[table] encoding 'klingon' is not a known text encoding"),
    ({"options": {"amount_multiplier": 0}}, "[options] amount_multiplier must be a number greater than 0, not 0"),
    ({"options": {"date_format": "dd/mm/yyyy"}}, "[options] date_format 'dd/mm/yyyy' has no % directive"),
    ({"options": {"decimal_separator": "'"}}, "[options] decimal_separator must be \".\" or \",\""),
    ({"options": {"separator": " "}}, "[options] separator must be a non-blank text"),
])
def test_wrong_types_and_values(changes: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(table.MappingError) as err:
        table.parse_mapping(_example(**changes))
    assert message in str(err.value)
    section = next(iter(changes))
    assert err.value.field.startswith(f"{section}.")


def test_unreadable_toml_names_the_line(tmp_path: Path) -> None:
    path = _mapping_file(tmp_path, '[columns]\namount = "Amount"\ndate = Date awarded\n')
    with pytest.raises(table.MappingError) as err:
        table.load_mapping(path)
    assert str(err.value).startswith(f"{path}: not valid TOML: ")
    assert "line 3" in str(err.value)


def test_missing_mapping_file(tmp_path: Path, export_csv: Path) -> None:
    with pytest.raises(table.MappingError, match="cannot read the mapping file"):
        table.read(export_csv, tmp_path / "nope.toml")


def test_yaml_mapping_without_pyyaml_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    path = _mapping_file(tmp_path, "columns:\n  amount: Amount\n", name="m.yaml")
    with pytest.raises(table.MappingError) as err:
        table.load_mapping(path)
    assert "a YAML mapping needs PyYAML" in str(err.value) and "TOML" in str(err.value)


def test_yaml_mapping_when_pyyaml_is_installed(tmp_path: Path, export_csv: Path) -> None:
    path = _mapping_file(tmp_path, (
        "table: {source_name: ef}\ncolumns: {id: Grant ref, amount: Amount, date: Date awarded}\n"
        "constants: {funder: Example Foundation, currency: GBP}\n"
    ), name="m.yml")
    records, _ = _split(list(table.read(export_csv, path)))
    assert records[0].record_id == "ef:EF-2023-001"


def test_column_not_in_the_file_lists_the_columns(export_xlsx: Path, export_csv: Path) -> None:
    mapping = _example(columns={"amount": "Amount (GBP)"})
    with pytest.raises(table.MappingError) as err:
        list(table.read(export_xlsx, mapping))
    message = str(err.value)
    assert message.startswith(
        f"mapping: column 'Amount (GBP)' named in mapping for amount is not in sheet 'Grants' of {export_xlsx}; "
        "columns are: 'Grant ref', 'Funder', 'Funder ID', 'Organisation',"
    )
    assert message.endswith("'Summary', 'Notes'; did you mean 'Amount'?")
    assert err.value.field == "columns.amount"
    with pytest.raises(table.MappingError, match=_re("is not in the header row (row 1) of")):
        list(table.read(export_csv, mapping))


def test_example_file_errors_name_the_mapping_file(tmp_path: Path, export_csv: Path) -> None:
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8").replace('"Organisation"', '"Organization"')
    path = _mapping_file(tmp_path, text, name="mine.toml")
    with pytest.raises(table.MappingError) as err:
        list(table.read(export_csv, path))
    assert str(err.value).startswith(f"{path}: column 'Organization' named in mapping for recipient")


def test_sheet_not_in_the_workbook(export_xlsx: Path) -> None:
    with pytest.raises(table.MappingError) as err:
        list(table.read(export_xlsx, _example(table={"sheet": "Grant"})))
    assert "sheet 'Grant' named in [table] sheet is not in" in str(err.value)
    assert str(err.value).endswith("sheets are: 'Read me', 'Grants'; did you mean 'Grants'?")


def test_column_named_twice_in_the_file(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "t.csv", ["Amount", "Date", "amount"], [["1", "2023-01-01", "2"]])
    mapping = {"columns": {"amount": "Amount", "date": "Date"}, "constants": {"funder": "F", "currency": "GBP"}}
    with pytest.raises(table.MappingError, match="appears 2 times .* \\(columns 1 and 3\\)"):
        list(table.read(path, mapping))


def test_file_problems(tmp_path: Path) -> None:
    mapping = {"columns": {"amount": "Amount", "date": "Date"}, "constants": {"funder": "F", "currency": "GBP"}}
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(LoadError, match="the file is empty"):
        list(table.read(empty, mapping))
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    with pytest.raises(LoadError, match="old binary .xls"):
        list(table.read(xls, mapping))
    short = _write_csv(tmp_path / "short.csv", ["Amount", "Date"], [])
    with pytest.raises(LoadError, match="no row 5"):
        list(table.read(short, {**mapping, "table": {"header_row": 5}}))


def test_fingerprint_follows_the_content_not_the_place(tmp_path: Path) -> None:
    a = table.load_mapping(EXAMPLE_MAPPING)
    copy = _mapping_file(tmp_path, EXAMPLE_MAPPING.read_text(encoding="utf-8"), name="example-mapping.toml")
    assert table.load_mapping(copy).fingerprint() == a.fingerprint()
    assert table.parse_mapping(_example(options={"amount_multiplier": 1000})).fingerprint() != a.fingerprint()


def test_parsers_shared_with_other_loaders() -> None:
    assert table.parse_amount("£12,500.00") == 12500.0
    assert table.parse_amount("1 250,5", ",") == 1250.5
    assert table.parse_amount(7) == 7.0
    for bad in ("12,5", "1.2.3", "n/a", True, "inf"):
        with pytest.raises(ValueError):
            table.parse_amount(bad)
    assert str(table.parse_date("31/12/2023")) == "2023-12-31"
    assert str(table.parse_date("2023-12-31T23:00:00Z")) == "2023-12-31"
    assert str(table.parse_date(45291, excel=True)) == "2023-12-31"
    assert table.parse_date("  ") is None
    with pytest.raises(ValueError, match="not a date in the format"):
        table.parse_date("2023-12-31", "%d/%m/%Y")
    assert table.sniff_delimiter("a;b;c,d") == ";" and table.sniff_delimiter("abc") == ","
    assert table.cell_text(1234.0) == "1234" and table.cell_text("  ") is None
