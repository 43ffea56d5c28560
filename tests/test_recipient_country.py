"""``recipient_country_iso3``: where the recipient is based, per stream, on the real files, each checked
against a count made straight from the file (openpyxl, json, lxml), and through a store."""

from __future__ import annotations

import json
import re
from collections import Counter

import openpyxl
from lxml import etree

from data_sources import geography, giving360, iati, orgids
from data_sources.enrich import canonical_rows
from data_sources.filters import Filters
from data_sources.loading import load_file
from data_sources.queries import iter_rows
from data_sources.records import SourceRecord
from tests.conftest import shared_file, shared_files

ABCT = ("360giving", "abct_a001p00000zgyHZAAY.xlsx")
_COUNTED_TYPES = {"2", "3", "4", "12", "C", "D", "E"}


def _records(results) -> list[SourceRecord]:
    return [r for r in results if isinstance(r, SourceRecord)]


def _prefix_country(ref: str | None) -> str | None:
    """The ISO2 country an org-id starts with, by regex and the ISO table (not the orgids parser)."""
    text = re.sub(r"\s+", "", ref or "").upper()
    m = re.fullmatch(r"([A-Z]{2})-[A-Z0-9_]+-.+", text) or re.fullmatch(r"([A-Z]{2})-\d{1,4}", text)
    if not m or m[1] in ("XM", "XI") or geography.to_iso3(m[1]) is None:
        return None
    return m[1]


def test_country_of_identifier() -> None:
    cases = {"GB-CHC-1126147": "GB", "gb-coh- 213890": "GB", "US-EIN-27-1661997": "US", "UG-NGO-1406": "UG",
             "GB-1": "GB", "XM-DAC-41122": None, "41122": None, "XI-IATI-EC": None, "Excluded": None,
             "360G-ABCT-1": None, "": None, None: None}
    assert {raw: orgids.country_of_identifier(raw, "iati") for raw in cases} == cases


def test_abct_recipients_are_uk_charities() -> None:
    path = shared_file(*ABCT)
    ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = [str(c).strip() if c else "" for c in next(rows)]
    ident, org_id = header.index("Identifier"), header.index("Recipient Org:Identifier")
    expected = {}
    for row in rows:
        if row[ident] is None:
            continue
        expected[str(row[ident]).strip()] = "GBR" if str(row[org_id] or "").upper().startswith("GB-") else None
    rows_out = [row for record in _records(giving360.read(path)) for row in canonical_rows(record, "f", 1)]
    got = {row["record_id"]: row["recipient_country_iso3"] for row in rows_out}
    assert got == expected
    assert Counter(expected.values())["GBR"] > 700  # the file's recipients are UK charities


def test_360giving_json_recipient_country_from_address_or_org_id() -> None:
    for path in shared_files("360giving", "*.json"):
        expected = {}
        for grant in json.loads(path.read_text(encoding="utf-8"))["grants"]:
            org = (grant.get("recipientOrganization") or [{}])[0]
            address = (org.get("addressCountry") or "").strip().casefold()
            if grant.get("recipientIndividual"):
                country = None
            elif address in ("uk", "united kingdom", "great britain", "england", "scotland", "wales",
                             "northern ireland"):
                country = "GBR"
            else:
                iso2 = _prefix_country(org.get("id"))
                country = geography.to_iso3(iso2) if iso2 else None
            expected[grant["id"]] = country
        got = {r.record_id: geography.to_iso3(r.recipient_country) if r.recipient_country else None
               for r in _records(giving360.read(path))}
        assert got == expected, path.name
        assert any(expected.values()), path.name


def _named(org: etree._Element | None) -> bool:
    return org is not None and bool((org.get("ref") or "").strip() or org.find("narrative") is not None)


def _implementer_ref(activity: etree._Element) -> str | None:
    for org in activity.iterfind("participating-org"):
        if (org.get("role") or "").strip() == "4" and _named(org):
            return (org.get("ref") or "").strip() or None
    return None


def test_iati_recipient_country_from_receiver_ref() -> None:
    checked = Counter()
    for path in shared_files("iati", "*.xml"):
        expected: dict[str, str | None] = {}
        for activity in etree.parse(str(path)).getroot().iterfind("iati-activity"):
            identifier = (activity.findtext("iati-identifier") or "").strip()
            implementer = _implementer_ref(activity)
            for n, transaction in enumerate(activity.iterfind("transaction")):
                receiver = transaction.find("receiver-org")
                ref = implementer
                if _named(receiver):
                    ref = (receiver.get("ref") or "").strip() or None
                expected[f"{identifier}#t{n}"] = _prefix_country(ref)
            for n, _budget in enumerate(activity.iterfind("budget")):
                expected[f"{identifier}#b{n}"] = _prefix_country(implementer)
        for record in _records(iati.read(path)):
            assert record.recipient_country == expected[record.record_id], (path.name, record.record_id)
            checked[record.recipient_country is not None] += 1
    assert checked[True] > 300 and checked[False] > 0


def test_stored_rows_carry_the_recipient_country(engine) -> None:
    load_file(engine, shared_file(*ABCT))
    load_file(engine, shared_file("iati", "dportal_covid.xml"))
    rows = list(iter_rows(engine, Filters()))
    by_source = Counter((r["source"], r["recipient_country_iso3"]) for r in rows)
    abct = _records(giving360.read(shared_file(*ABCT)))
    covid = _records(iati.read(shared_file("iati", "dportal_covid.xml")))
    # Each record's value on every one of its allocation rows.
    expected = Counter()
    for record in abct + covid:
        iso3 = geography.to_iso3(record.recipient_country) if record.recipient_country else None
        expected[(record.source, iso3)] += len(canonical_rows(record, "f", 1))
    assert by_source == expected
    assert by_source[("360giving", "GBR")] > 700 and by_source[("iati", "KOR")] > 0


def test_a_mapped_table_names_the_recipient_country(tmp_path) -> None:
    from data_sources import table

    path = tmp_path / "grants.csv"
    path.write_text("Ref,Amount,Currency,Date,Funder,Country,Based\n"
                    "A,100,GBP,2023-01-05,F,Kenya,GB\n"
                    "B,200,GBP,2023-02-05,F,Uganda,Uganda\n"
                    "C,300,GBP,2023-03-05,F,Nepal,\n"
                    "D,400,GBP,2023-04-05,F,Nepal,Atlantis\n", encoding="utf-8")
    mapping = {"columns": {"id": "Ref", "amount": "Amount", "currency": "Currency", "date": "Date",
                           "funder": "Funder", "country": "Country", "recipient_country": "Based"},
               "table": {"source_name": "t"}}
    records = _records(table.read(path, mapping))
    got = {r.record_id: canonical_rows(r, "f", 1)[0]["recipient_country_iso3"] for r in records}
    assert got == {"t:A": "GBR", "t:B": "UGA", "t:C": None, "t:D": None}  # not a country: empty
