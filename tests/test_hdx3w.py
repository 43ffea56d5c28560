"""HDX 3W/4W loader: the real AFG file checked against an independent count, plus hand-made tables."""

from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from data_sources import enrich, giving360, hdx3w, schema
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord
from tests.conftest import shared_file

AFG_CSV = ("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv")
AFG_CKAN_JSON = ("hdx_3w", "afghanistan-who-does-what-where-january-to-march-2024.json")


def _split(results: list[SourceRecord | Rejection]) -> tuple[list[SourceRecord], list[Rejection]]:
    records = [r for r in results if isinstance(r, SourceRecord)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    assert len(records) + len(rejections) == len(results)
    return records, rejections


def _canonical(records: list[SourceRecord]) -> pd.DataFrame:
    rows = [row for record in records for row in enrich.canonical_rows(record, "f", 1)]
    return schema.validate(schema.coerce(pd.DataFrame(rows, columns=schema.COLUMN_NAMES)))


def _write_csv(path: Path, lines: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(lines)
    return path


# --------------------------------------------------------------------------- the real file


def _independent_afg(path: Path) -> list[tuple[int, list[str]]]:
    """(row number, cells) of every data row, read with the csv module only."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    tag_row = next(i for i, row in enumerate(rows) if sum(c.strip().startswith("#") for c in row) >= 2)
    return [
        (i + 1, [c.strip() for c in row]) for i, row in enumerate(rows) if i > tag_row and any(c.strip() for c in row)
    ]


def test_real_afg_file_every_row_is_a_presence_record() -> None:
    path = shared_file(*AFG_CSV)
    assert hdx3w.detect(path.read_bytes()[: 64 * 1024])
    expected = _independent_afg(path)
    assert len(expected) == 10902  # as SOURCES.md says; the independent count is the real check

    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == []
    assert [r.record_id for r in records] == [f"row{n}" for n, _ in expected]
    for record, (_, cells) in zip(records, expected, strict=True):
        assert record.source == "hdx_3w" and record.flow_type == "presence"
        assert record.amount is None and record.currency is None and record.amount_usd is None
        assert record.year == 2024  # from the file name: the file has no date column
        place = record.places[0]
        assert (place.country, place.admin1_pcode, place.admin1_name) == ("AFG", cells[2], cells[1])
        assert record.implementer_name == record.recipient_name == (cells[6] or cells[5])
        assert record.recipient_type == (cells[7] or None)
        assert record.source_sector == cells[9] and record.sectors == []

    frame = _canonical(records)
    assert len(frame) == len(records)
    assert (frame["country_iso3"] == "AFG").all()
    assert frame["admin1_pcode"].map(lambda c: bool(re.fullmatch(r"AF\d\d", c))).all()
    assert (frame["geo_level"] == "admin1").all()
    assert frame["amount_usd"].isna().all() and frame["amount"].isna().all()
    assert frame["admin1_pcode"].nunique() == 34
    # Two rows have no ORG_NAME: the acronym names the organisation.
    assert sorted(r.record_id for r in records if r.implementer_name == "WEWORLD") == ["row10152", "row10169"]


def test_real_ckan_metadata_json_is_not_a_3w_table() -> None:
    path = shared_file(*AFG_CKAN_JSON)
    assert b"#org" in path.read_bytes()  # it names hashtags, yet it is metadata, not a table
    assert not hdx3w.detect(path.read_bytes()[: 64 * 1024])
    with pytest.raises(LoadError, match="JSON or XML"):
        list(hdx3w.read(path))


def test_other_streams_real_files_are_not_claimed() -> None:
    for parts in (
        ("360giving", "esmee_grantnav-20180903134856.json"),
        ("iati", "worldbank-sv.xml"),
        ("ocha_fts", "fts_incoming_funding_afg.csv"),
        ("oecd_crs", "water_germany_crs_microdata.csv"),
    ):
        assert not hdx3w.detect(shared_file(*parts).read_bytes()[: 64 * 1024]), parts
    workbook = shared_file("360giving", "abct_a001p00000zgyHZAAY.xlsx")
    assert not hdx3w.sniff_xlsx(workbook)  # a zip head may be ours; its rows say it is not


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "head",
    [
        b"#org,#sector,#adm1+code\nUNICEF,WASH,AF01\n",
        b"\xef\xbb\xbfOrg,Sector,Province\r\n#org+name,#sector+name,#adm1+name\r\nWHO,Health,Kabul\r\n",
        b"Afghanistan 3W\nQ1 2024\nOrg;Cluster\n#org +acronym;#sector +cluster\nWFP;FSAC\n",
        codecs.BOM_UTF16_LE + "Org\tCluster\n#ORG\t#Sector\nWFP\tFSAC\n".encode("utf-16-le"),
        b"PK\x03\x04" + b"\x00" * 26 + b"xl/workbook.xml",
    ],
    ids=["first-row", "second-row-bom", "fourth-row-semicolon", "utf16-tab", "xlsx-zip"],
)
def test_detect_accepts_hashtag_tables(head: bytes) -> None:
    assert hdx3w.detect(head)


@pytest.mark.parametrize(
    "head",
    [
        b'{"name": "afghanistan-3w", "hxl": "#org+name,#sector+cluster,#adm1+code"}',
        b"Identifier,Title,Currency,Amount Awarded,Award Date,Funding Org:Identifier\n"
        b"360G-1,A,GBP,10,2020-01-01,GB-1\n",
        b'<?xml version="1.0"?>\n<iati-activities version="2.03"><iati-activity/></iati-activities>',
        b"org,sector,adm1\nUNICEF,WASH,AF01\n",
        b"#,Name\n1,#climate\n",
        b"PK\x03\x04" + b"\x00" * 26 + b"word/document.xml",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
        b"",
    ],
    ids=["ckan-json", "360giving-csv", "iati-xml", "plain-csv", "one-hash-cell", "docx", "xls", "empty"],
)
def test_detect_rejects_other_content(head: bytes) -> None:
    assert not hdx3w.detect(head)


def test_hashtag_parsing_is_case_and_space_insensitive() -> None:
    tag = hdx3w.parse_hashtag(" #ORG +Impl  +name ")
    assert tag is not None and tag.tag == "org" and tag.attrs == {"impl", "name"} and tag.text == "#org+impl+name"
    assert hdx3w.parse_hashtag("#adm1/fr").tag == "adm1"
    assert hdx3w.parse_hashtag("# comment") is None
    assert hdx3w.parse_hashtag("#org+name extra") is None
    assert hdx3w.parse_hashtag("#3W") is None
    assert hdx3w.parse_hashtag(12) is None


# --------------------------------------------------------------------------- layouts


def test_hashtag_row_first_with_no_text_headers(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "three_w.csv",
        [
            ["#org+name", "#org+acronym", "#sector", "#adm1+code", "#adm1+name", "#adm2+code"],
            ["Save the Children", "SCI", "Education", "SO11", "Banadir", "SO1101"],
            ["", "", "", "", "", ""],
            ["", "MSF", "Health", "", "", "SO2203"],
        ],
    )
    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == []
    assert [r.record_id for r in records] == ["row2", "row4"]  # the empty row 3 is skipped
    first, second = records
    assert first.implementer_name == "Save the Children" and first.flow_type == "presence"
    assert first.places[0].country == "SOM" and first.places[0].admin1_pcode == "SO11"
    assert second.implementer_name == "MSF"  # name cell empty: the acronym
    assert second.places[0].country == "SOM" and second.places[0].admin1_pcode is None  # from the admin-2 P-code
    assert first.year is None  # no date, no year argument, no year in the file name
    frame = _canonical(records)
    assert list(frame["theme"]) == ["Education", "Health"]
    assert list(frame["geo_level"]) == ["admin1", "country"]


def test_hashtag_row_on_line_three_after_title_lines(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "nigeria_3w.csv",
        [
            ["Nigeria: who does what where", "", ""],
            ["Organisation", "State", "Cluster"],
            ["#org", "#adm1 +name", "#sector +cluster"],
            ["IRC", "Borno", "Protection"],
            ["UNHCR", "Adamawa", "Shelter"],
        ],
    )
    records = list(hdx3w.read(path, year=2023))
    assert [(r.record_id, r.implementer_name, r.places[0].admin1_name, r.year) for r in records] == [
        ("row4", "IRC", "Borno", 2023),
        ("row5", "UNHCR", "Adamawa", 2023),
    ]
    assert records[0].places[0].country is None  # no country column and no P-code to infer it from


def test_tags_with_spaces_upper_case_semicolons_and_cp1252(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "drc.csv",
        [
            ["Organisation", "Type", "Pays", "Province", "Secteur", "Lat", "Lon", "Début", "Fin"],
            ["#ORG +Impl +Name", "#Org+IMPL+Type", "#Country +Code", "#ADM1 +code", "#SECTOR",
             "#geo +lat", "#geo +lon", "#date +start", "#date +end"],
            ["Médecins du Monde", "INGO", "COD", "CD10", "Santé", "-4,32", "15,31", "15/02/2022", "2022-12-31"],
        ],
        encoding="cp1252",
        delimiter=";",
    )
    assert hdx3w.detect(path.read_bytes())
    (record,) = list(hdx3w.read(path))
    assert record.implementer_name == "Médecins du Monde" and record.recipient_type == "INGO"
    place = record.places[0]
    assert (place.country, place.admin1_pcode, place.lat, place.lon) == ("COD", "CD10", -4.32, 15.31)
    assert (record.start_date, record.end_date, record.year) == ("2022-02-15", "2022-12-31", 2022)
    assert _canonical([record])["geo_level"].tolist() == ["point"]


def test_utf16_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "yemen_3w.txt"
    text = "Org\tGov\n#org+name\t#adm1+code\nUNICEF\tYE11\n"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    (record,) = list(hdx3w.read(path))
    place = record.places[0]
    assert (record.implementer_name, place.country, place.admin1_pcode) == ("UNICEF", "YEM", "YE11")


# --------------------------------------------------------------------------- 4W amounts


def _four_w_workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    readme = wb.active
    readme.title = "Read me"
    readme.append(["This 4W lists funded activities."])
    lists = wb.create_sheet("Lists")
    lists.append(["Province", "P-code"])
    lists.append(["#adm1+name", "#adm1+code"])
    lists.append(["Kabul", "AF01"])
    data = wb.create_sheet("4W")
    data.append(["Funder", "Implementer", "Acronym", "Cluster", "DAC", "Country", "Province", "USD", "Status",
                 "Start", "Activity"])
    data.append(["#org+funder+name", "#org+impl+name", "#org+impl+acronym", "#sector+name", "#sector+dac",
                 "#country+code", "#adm1+code", "#value+usd", "#status", "#date+start", "#activity+name"])
    data.append(["ECHO", "Norwegian Refugee Council", "NRC", "WASH", 14030, "AFG", "AF01", 250000, "Ongoing",
                 pd.Timestamp("2024-03-01").to_pydatetime(), "Water trucking"])
    data.append(["BHA", "", "IRC", "Health", None, "AFG", "AF02", "1,500.50", "Planned", "2023-05-01", None])
    data.append([None] * 11)
    data.append(["SIDA", "UNICEF", None, "Nutrition", None, "AFG", "AF03", "lots", None, None, None])
    data.append(["CERF", "WFP", None, "Food Security", None, "AFG", "AF04", None, None, None, None])
    wb.save(path)
    return path


def test_four_w_xlsx_with_usd_amounts_and_funders(tmp_path: Path) -> None:
    path = _four_w_workbook(tmp_path / "afg_4w.xlsx")
    head = path.read_bytes()[: 64 * 1024]
    assert hdx3w.detect(head) and hdx3w.sniff_xlsx(path)
    assert not giving360.sniff_xlsx(path)  # the registry asks 360Giving first: it must pass this on

    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == [Rejection("4W:row6", "#value+usd", "not a number: 'lots'")]
    assert [r.record_id for r in records] == ["4W:row3", "4W:row4", "4W:row7"]
    funded, planned, presence = records

    assert (funded.funder_name, funded.recipient_name, funded.implementer_name) == (
        "ECHO", "Norwegian Refugee Council", "Norwegian Refugee Council")
    assert (funded.amount, funded.currency, funded.amount_usd, funded.flow_type) == (250000.0, "USD", 250000.0,
                                                                                     "commitment")
    assert (funded.start_date, funded.year, funded.title) == ("2024-03-01", 2024, "Water trucking")
    assert [(s.code, s.name) for s in funded.sectors] == [("14030", "WASH")]

    assert planned.implementer_name == "IRC"  # the acronym when the name is empty
    assert (planned.amount, planned.flow_type, planned.year) == (1500.5, "pledge", 2023)

    assert (presence.flow_type, presence.amount, presence.currency, presence.funder_name) == (
        "presence", None, None, "CERF")

    frame = _canonical(records)
    assert frame["amount_usd"].tolist()[:2] == [250000.0, 1500.5]
    assert frame["sector_code"].tolist()[0] == "14030" and frame["theme"].tolist()[0] == "WASH"
    assert frame.loc[frame["record_id"] == "4W:row7", "amount_usd"].isna().all()


def test_bad_amount_is_rejected_naming_the_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "fourw.csv",
        [
            ["#org+impl", "#value +USD", "#adm1+code"],
            ["NRC", "12k", "AF01"],
            ["IRC", "1.234.567,50", "AF02"],
            ["WFP", "n/a", "AF03"],
            ["MSF", "$ 2 000", "AF04"],
        ],
    )
    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == [Rejection("row2", "#value+usd", "not a number: '12k'")]
    assert [(r.record_id, r.amount, r.flow_type) for r in records] == [
        ("row3", 1234567.5, "commitment"),
        ("row4", None, "presence"),
        ("row5", 2000.0, "commitment"),
    ]


def test_other_currency_with_currency_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "4w_2022.csv",
        [
            ["#org+funder", "#org+impl", "#value+disbursed", "#currency", "#country+name"],
            ["DFID", "Oxfam", "1000", "gbp", "Kenya"],
            ["DFID", "Oxfam", "1000", "pounds", "Kenya"],
            ["DFID", "Oxfam", "1000", "", "Kenya"],
        ],
    )
    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == [Rejection("row3", "#currency", "not an ISO 4217 code: 'POUNDS'")]
    gbp, no_currency = records
    assert (gbp.currency, gbp.flow_type, gbp.amount_usd, gbp.year) == ("GBP", "disbursement", None, 2022)
    assert no_currency.currency is None
    frame = _canonical(records)
    assert frame["country_iso3"].tolist() == ["KEN", "KEN"]
    assert frame["amount_usd"].notna().tolist() == [True, False]  # converted at the 2022 GBP rate
    assert frame["fx_note"].tolist()[1] == "no currency given"


def test_row_without_any_organisation_is_rejected(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "x.csv", [["#org", "#sector"], ["", "Health"], ["WHO", "Health"]])
    records, rejections = _split(list(hdx3w.read(path)))
    assert rejections == [Rejection("row2", "#org", "no organisation named (implementing or funding)")]
    assert [r.record_id for r in records] == ["row3"]


# --------------------------------------------------------------------------- whole-file errors


def test_file_without_hashtag_row_or_org_column_raises(tmp_path: Path) -> None:
    plain = _write_csv(tmp_path / "plain.csv", [["org", "sector"], ["WHO", "Health"]])
    with pytest.raises(LoadError, match="no HXL hashtag row"):
        list(hdx3w.read(plain))
    no_org = _write_csv(tmp_path / "admin.csv", [["#adm1+name", "#adm1+code"], ["Kabul", "AF01"]])
    with pytest.raises(LoadError, match="no organisation column"):
        list(hdx3w.read(no_org))
    late = _write_csv(tmp_path / "late.csv", [["title"]] * 25 + [["#org", "#sector"], ["WHO", "Health"]])
    with pytest.raises(LoadError, match="first 25 rows"):
        list(hdx3w.read(late))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        list(hdx3w.read(empty))


def test_workbook_without_a_3w_sheet_raises(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["#adm1+name", "#adm1+code"])
    path = tmp_path / "lists.xlsx"
    wb.save(path)
    assert hdx3w.sniff_xlsx(path)  # a hashtag row: read() says what is missing
    with pytest.raises(LoadError, match="no organisation column"):
        list(hdx3w.read(path))


def test_year_from_file_name() -> None:
    assert hdx3w.year_from_name("afg_3w_january_march_2024.csv") == 2024
    assert hdx3w.year_from_name("3w_2023_2024.csv") is None
    assert hdx3w.year_from_name("3w_20240101.csv") is None
    assert hdx3w.year_from_name("3w.csv") is None
