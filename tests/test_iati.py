"""Tests of the IATI activity loader: real files checked against an independent count, and small
hand-made activities for each mapping rule."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
from lxml import etree

from data_sources import iati
from data_sources.errors import LoadError, Rejection
from data_sources.records import Place, SectorShare, SourceRecord
from data_sources.schema import FLOW_TYPES

from .conftest import shared_file, shared_files

IATI_FILES = shared_files("iati", "*.xml")

# Figures read off the files once; the independent count below is the real check.
PINNED = {
    "dportal_covid.xml": (856, 21),
    "dportal_foodsecurity.xml": (57, 0),
    "iati-activity-standard-example-annotated.xml": (1, 0),
    "usaid-798.xml": (622, 0),
    "worldbank-679.xml": (293, 0),
    "worldbank-sv.xml": (294, 0),
}


def _split(path: Path) -> tuple[list[SourceRecord], list[Rejection]]:
    records, rejections = [], []
    for item in iati.read(path):
        (rejections if isinstance(item, Rejection) else records).append(item)
    return records, rejections


# --- an independent, whole-tree reading of the same rules ---------------------------------

_COUNTED_CODES = {"2", "3", "4", "12", "C", "D", "E"}
_KNOWN_CODES = {str(n) for n in range(1, 14)} | {"IF", "IR", "LR", "R", "QP", "QS", "CG"}


def _expected(path: Path) -> tuple[int, int, dict[str, float]]:
    """Records, rejections and amount per currency, by plain XPath over the whole tree."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(path), parser).getroot()
    records = rejections = 0
    sums: dict[str, float] = defaultdict(float)
    seen = set()

    def take(value: str, currency: str, when: str) -> None:
        nonlocal records, rejections
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", value) or not currency or not when:
            rejections += 1
        else:
            records += 1
            sums[currency.upper()] += float(value)

    for activity in root.xpath("iati-activity"):
        identifier = activity.xpath("string(iati-identifier)").strip()
        if not identifier or identifier in seen:
            rejections += 1
            continue
        seen.add(identifier)
        default = activity.get("default-currency", "").strip()
        counted = []
        for transaction in activity.xpath("transaction"):
            code = transaction.xpath("string(transaction-type/@code)").strip().upper()
            if code not in _KNOWN_CODES:  # no code, or one outside the codelist
                rejections += 1
            elif code in _COUNTED_CODES:
                counted.append(transaction)
        for transaction in counted:
            date = transaction.xpath("string(transaction-date/@iso-date)") or transaction.xpath(
                "string(value/@value-date)"
            )
            currency = transaction.xpath("string(value/@currency)").strip() or default
            take(transaction.xpath("string(value)").strip(), currency, date[:10])
        if counted:
            continue
        budgets = activity.xpath("budget")
        revised = {b.xpath("string(period-start/@iso-date)")[:10] for b in budgets if b.get("type") == "2"}
        for budget in budgets:
            start = budget.xpath("string(period-start/@iso-date)")[:10]
            if budget.get("type", "1") == "1" and start in revised:
                continue
            currency = budget.xpath("string(value/@currency)").strip() or default
            take(
                budget.xpath("string(value)").strip(),
                currency,
                start or budget.xpath("string(value/@value-date)"),
            )
    return records, rejections, dict(sums)


@pytest.mark.parametrize("path", IATI_FILES, ids=lambda p: p.name)
def test_real_file_matches_independent_count(path: Path) -> None:
    records, rejections = _split(path)
    want_records, want_rejections, want_sums = _expected(path)
    assert len(records) == want_records
    assert len(rejections) == want_rejections
    sums: dict[str, float] = defaultdict(float)
    for record in records:
        sums[record.currency] += record.amount
    assert set(sums) == set(want_sums)
    for currency, total in want_sums.items():
        assert sums[currency] == pytest.approx(total, rel=1e-9), currency
    assert (len(records), len(rejections)) == PINNED[path.name]


@pytest.mark.parametrize("path", IATI_FILES, ids=lambda p: p.name)
def test_real_file_records_are_well_formed(path: Path) -> None:
    records, rejections = _split(path)
    assert records
    assert len({r.record_id for r in records} | {r.record_id for r in rejections}) == len(records) + len(
        rejections
    )
    for record in records:
        assert record.source == "iati"
        assert re.fullmatch(r".+#[tb]\d+", record.record_id)
        assert record.flow_type in FLOW_TYPES
        assert re.fullmatch(r"[A-Z]{3}", record.currency)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record.date) and record.year == int(record.date[:4])
        for day in (record.start_date, record.end_date):
            assert day is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", day)
        for lat, lon in record.points:
            assert -90 <= lat <= 90 and -180 <= lon <= 180
        for item in [*record.places, *record.sectors]:
            assert item.share is None or 0 < item.share <= 1
        assert record.theme_hint is None
    assert iati.detect(path.read_bytes()[: 64 * 1024])


def test_real_file_details() -> None:
    usaid, _ = _split(shared_file("iati", "usaid-798.xml"))
    # Sectors and region are on USAID's transactions only.
    assert all(r.places == [Place(region="798")] for r in usaid)
    assert all(r.sectors and r.source_sector and "99:" in r.source_sector for r in usaid)
    assert all(r.funder_id == "US-GOV-1" and r.funder_type == "Government" for r in usaid)

    salvador, _ = _split(shared_file("iati", "worldbank-sv.xml"))
    assert all(r.places == [Place(share=1.0, country="SV")] for r in salvador)
    assert all(r.points for r in salvador)
    assert any("98:" in (r.source_sector or "") for r in salvador)

    regional, _ = _split(shared_file("iati", "worldbank-679.xml"))
    assert all(r.places == [Place(share=1.0, region="679")] for r in regional)


def test_annotated_example_ignores_comments() -> None:
    (record,), rejections = _split(shared_file("iati", "iati-activity-standard-example-annotated.xml"))
    assert rejections == []
    # Its only transaction is incoming funds, so its one budget stands for the activity.
    assert record.record_id == "AA-AAA-123456789-ABC123#b0"
    assert (record.flow_type, record.amount, record.currency, record.date) == (
        "pledge",
        3000.0,
        "EUR",
        "2014-01-01",
    )
    assert record.title == "Activity title"
    assert record.description.startswith("General activity description text.")
    assert (record.start_date, record.end_date) == ("2012-04-28", "2015-12-31")
    assert (record.funder_id, record.funder_name, record.funder_type) == (
        "AA-AAA-123456789",
        "Organisation name",
        "Multilateral",
    )
    assert record.points == [(31.616944, 65.716944), (11.55, 104.9167)]
    assert record.places == [
        Place(share=0.25, country="AF"),
        Place(share=0.25, country="AG"),
        Place(share=0.25, region="489"),
        Place(share=0.25, region="99:A1"),
    ]
    assert record.sectors == [SectorShare(0.5, "111"), SectorShare(0.5, "112")]
    assert record.source_sector == "2:111; 2:112; 99:A1 - A description of the sector"
    text = repr(record)
    assert "starts" not in text and "ends" not in text


# --- small hand-made files ----------------------------------------------------------------


def _file(tmp_path: Path, activities: str, version: str = "2.03", name: str = "test.xml") -> Path:
    path = tmp_path / name
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<iati-activities version="{version}">{activities}'
        "</iati-activities>",
        encoding="utf-8",
    )
    return path


def _activity(body: str, identifier: str = "XX-1", currency: str = "USD") -> str:
    return f"""
    <iati-activity default-currency="{currency}">
      <iati-identifier>{identifier}</iati-identifier>
      <reporting-org ref="XX-REP" type="10"><narrative>Reporter</narrative></reporting-org>
      <title><narrative xml:lang="fr">Titre</narrative><narrative xml:lang="en">Title</narrative></title>
      {body}
    </iati-activity>"""


def _tx(code: str = "3", value: str = "100", extra: str = "", date: str = "2021-05-01") -> str:
    return f"""<transaction><transaction-type code="{code}"/><transaction-date iso-date="{date}"/>
      <value>{value}</value>{extra}</transaction>"""


def test_multi_country_percentages(tmp_path: Path) -> None:
    body = (
        '<recipient-country code="KE" percentage="60"/><recipient-country code="ug" percentage="40"/>' + _tx()
    )
    (record,), _ = _split(_file(tmp_path, _activity(body)))
    assert record.places == [Place(share=0.6, country="KE"), Place(share=0.4, country="UG")]
    assert record.title == "Title"


def test_transaction_places_override_activity_places_and_zero_shares(tmp_path: Path) -> None:
    body = (
        '<recipient-country code="KE" percentage="100"/><recipient-country code="TZ" percentage="0"/>'
        + _tx()
        + _tx(extra='<recipient-region code="A1" vocabulary="99"/>')
    )
    (first, second), _ = _split(_file(tmp_path, _activity(body)))
    assert first.places == [Place(share=1.0, country="KE")]  # 0 % carries no money
    assert second.places == [Place(region="99:A1")]
    only_zero = '<recipient-country code="BD" percentage="0"/>' + _tx()
    (record,), _ = _split(_file(tmp_path, _activity(only_zero)))
    assert record.places == [Place(country="BD")]


def test_transaction_sectors_override_activity_sectors(tmp_path: Path) -> None:
    body = (
        '<sector code="12220" percentage="70"><narrative>Basic health care</narrative></sector>'
        '<sector vocabulary="1" code="14030" percentage="30"/>'
        '<sector vocabulary="2" code="120" percentage="100"/>'
        '<sector vocabulary="98" code="WB AB" percentage="100"><narrative>Water</narrative></sector>'
        + _tx()
        + _tx(extra='<sector vocabulary="2" code="140"/><sector vocabulary="99" code="X"/>')
    )
    (activity_level, own), _ = _split(_file(tmp_path, _activity(body)))
    assert activity_level.sectors == [
        SectorShare(0.7, "12220", "Basic health care"),
        SectorShare(0.3, "14030"),
    ]
    assert activity_level.source_sector == ("1:12220 - Basic health care; 1:14030; 2:120; 98:WB AB - Water")
    assert own.sectors == [SectorShare(None, "140")]
    assert own.source_sector == "2:140; 99:X"


def test_provider_org_else_reporting_org(tmp_path: Path) -> None:
    provider = '<provider-org ref="GB-GOV-1" type="10"><narrative> FCDO </narrative></provider-org>'
    body = _tx(extra=provider) + _tx() + _tx(extra='<provider-org ref="XX-REP"/>')
    (given, fallback, same_org), _ = _split(_file(tmp_path, _activity(body)))
    assert (given.funder_id, given.funder_name, given.funder_type) == ("GB-GOV-1", "FCDO", "Government")
    assert (fallback.funder_id, fallback.funder_name, fallback.funder_type) == (
        "XX-REP",
        "Reporter",
        "Government",
    )
    assert (same_org.funder_id, same_org.funder_type) == ("XX-REP", "Government")


def test_receiver_org_else_implementing_org(tmp_path: Path) -> None:
    body = (
        '<participating-org ref="XX-FUND" role="1" type="40">'
        "<narrative>Funder</narrative></participating-org>"
        '<participating-org ref="XX-IMP" role="4" type="22">'
        '<narrative xml:lang="es">Socio</narrative><narrative>Partner</narrative></participating-org>'
        + _tx(extra='<receiver-org ref="XX-REC" type="60"><narrative>Receiver</narrative></receiver-org>')
        + _tx()
    )
    (given, fallback), _ = _split(_file(tmp_path, _activity(body)))
    assert (given.recipient_id, given.recipient_name, given.recipient_type) == (
        "XX-REC",
        "Receiver",
        "Foundation",
    )
    assert (fallback.recipient_id, fallback.recipient_name, fallback.recipient_type) == (
        "XX-IMP",
        "Partner",
        "National NGO",
    )
    assert given.implementer_name == fallback.implementer_name == "Partner"


def _budget(kind: str | None, status: str | None, start: str, value: str, currency: str = "") -> str:
    attributes = (f' type="{kind}"' if kind else "") + (f' status="{status}"' if status else "")
    currency = f' currency="{currency}"' if currency else ""
    return f"""<budget{attributes}><period-start iso-date="{start}"/><period-end iso-date="2099-12-31"/>
      <value{currency} value-date="2000-01-01">{value}</value></budget>"""


def test_budgets_when_no_counted_transactions(tmp_path: Path) -> None:
    budgets = (
        _budget("1", "1", "2020-01-01", "100")
        + _budget("2", "2", "2020-01-01T00:00:00", "150", "EUR")
        + _budget("1", None, "2021-01-01", "200")
        + _budget(None, "2", "2022-01-01", "300")
    )
    incoming = _tx(code="1") + _tx(code="11")
    records, rejections = _split(_file(tmp_path, _activity(incoming + budgets)))
    assert rejections == []
    assert [(r.record_id, r.flow_type, r.amount, r.currency, r.date, r.year) for r in records] == [
        ("XX-1#b1", "commitment", 150.0, "EUR", "2020-01-01", 2020),
        ("XX-1#b2", "pledge", 200.0, "USD", "2021-01-01", 2021),
        ("XX-1#b3", "commitment", 300.0, "USD", "2022-01-01", 2022),
    ]
    assert all(r.funder_id == "XX-REP" for r in records)

    # One counted transaction and the budgets are not used.
    records, _ = _split(_file(tmp_path, _activity(incoming + _tx(code="2") + budgets)))
    assert [r.record_id for r in records] == ["XX-1#t2"]


def test_transaction_types(tmp_path: Path) -> None:
    body = "".join(
        _tx(code=code) for code in ["1", "2", "3", "4", "5", "6", "11", "12", "13", "C", "D", "E", "IF"]
    )
    body += "<transaction><transaction-type/><value>5</value></transaction>"
    body += _tx(code="99")
    records, rejections = _split(_file(tmp_path, _activity(body)))
    assert [(r.record_id, r.flow_type) for r in records] == [
        ("XX-1#t1", "commitment"),
        ("XX-1#t2", "disbursement"),
        ("XX-1#t3", "expenditure"),
        ("XX-1#t7", "pledge"),
        ("XX-1#t9", "commitment"),
        ("XX-1#t10", "disbursement"),
        ("XX-1#t11", "expenditure"),
    ]
    assert rejections == [
        Rejection("XX-1#t13", "transaction-type/@code", "missing transaction type code"),
        Rejection("XX-1#t14", "transaction-type/@code", "unknown transaction type code '99'"),
    ]


def test_values_currencies_and_dates(tmp_path: Path) -> None:
    body = (
        _tx(value="  -1234.50\n ", date="2021-03-04T10:00:00Z")
        + _tx(value="1,234.5")
        + _tx(value="")
        + _tx(value="NaN")
        + '<transaction><transaction-type code="3"/><value value-date="2019-02-03">7</value></transaction>'
        + '<transaction><transaction-type code="3"/><value>8</value></transaction>'
        + '<transaction><transaction-type code="3"/><transaction-date iso-date="2020-13-01"/>'
        '<value currency="gbp" value-date="2018-01-01">12</value></transaction>'
    )
    records, rejections = _split(_file(tmp_path, _activity(body)))
    assert [(r.record_id, r.amount, r.currency, r.date, r.year) for r in records] == [
        ("XX-1#t0", -1234.5, "USD", "2021-03-04", 2021),  # a negative value is a correction, kept
        ("XX-1#t4", 7.0, "USD", "2019-02-03", 2019),
        ("XX-1#t6", 12.0, "GBP", "2018-01-01", 2018),
    ]
    assert [(r.record_id, r.field) for r in rejections] == [
        ("XX-1#t1", "transaction/value"),
        ("XX-1#t2", "transaction/value"),
        ("XX-1#t3", "transaction/value"),
        ("XX-1#t5", "transaction-date/@iso-date"),
    ]
    no_currency = _file(tmp_path, _activity(_tx(), currency=""))
    assert list(iati.read(no_currency))[0].field == "value/@currency"


def test_duplicate_activity_is_rejected(tmp_path: Path) -> None:
    path = _file(tmp_path, _activity(_tx(value="1")) + _activity(_tx(value="2")) + _activity(_tx(), "XX-2"))
    records, rejections = _split(path)
    assert [(r.record_id, r.amount) for r in records] == [("XX-1#t0", 1.0), ("XX-2#t0", 100.0)]
    assert rejections == [Rejection("XX-1", "iati-identifier", "duplicate activity in file; first kept")]


EPSG = "http://www.opengis.net/def/crs/EPSG/0/4326"


def test_activity_dates_description_and_points(tmp_path: Path) -> None:
    body = f"""
      <description type="2"><narrative>Objectives</narrative></description>
      <description type="1"><narrative xml:lang="de">Allgemein</narrative></description>
      <activity-date type="1" iso-date="2020-01-01"/><activity-date type="3" iso-date="2022-12-31"/>
      <activity-date type="4" iso-date="2023-06-30T00:00:00"/>
      <location><point srsName="{EPSG}"><pos> 1.5,  36.8 </pos></point></location>
      <location><point srsName="{EPSG}"><pos>95 10</pos></point></location>
      <location><point><pos>junk</pos></point></location>
      <location><point srsName="{EPSG}"><pos>-1.28 36.82</pos></point></location>
      <ext:note xmlns:ext="https://example.org/ext"><narrative>ignored</narrative></ext:note>
    """
    (first, second), _ = _split(_file(tmp_path, _activity(body + _tx() + _tx())))
    assert first.description == "Allgemein"
    assert (first.start_date, first.end_date) == ("2020-01-01", "2023-06-30")
    assert first.points == second.points == [(1.5, 36.8), (-1.28, 36.82)]
    assert first.points is not second.points


def test_version_1_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, _activity(_tx()), version="1.03")
    with pytest.raises(LoadError) as caught:
        list(iati.read(path))
    assert "1.03" in caught.value.reason and "2.0" in caught.value.reason
    assert caught.value.file == str(path)


def test_organisation_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "org.xml"
    path.write_bytes(b'<iati-organisations version="2.03"><iati-organisation/></iati-organisations>')
    assert iati.detect(path.read_bytes())
    with pytest.raises(LoadError, match="organisation"):
        list(iati.read(path))


def test_truncated_file_names_file_and_line(tmp_path: Path) -> None:
    whole = _file(tmp_path, _activity(_tx()) + _activity(_tx(), "XX-2")).read_text()
    path = tmp_path / "truncated.xml"
    path.write_text(whole[: whole.index("XX-2") + 10])
    items = iati.read(path)
    assert isinstance(next(items), SourceRecord)  # streamed: the first activity comes before the error
    with pytest.raises(LoadError) as caught:
        list(items)
    assert caught.value.file == str(path)
    assert re.search(r"line \d+", str(caught.value))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b'{"iati-activities": []}', "line 1, column 1"),
        (b"<grants><grant/></grants>", "not an IATI activity file"),
        (b'<iati-activities version="3.0"/>', "3.0"),
    ],
)
def test_other_files_are_load_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "other.xml"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=re.escape(message)):
        list(iati.read(path))
    with pytest.raises(LoadError, match="cannot open"):
        list(iati.read(tmp_path / "missing.xml"))


def test_external_entity_is_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f"""<?xml version="1.0"?>
<!DOCTYPE iati-activities [
  <!ENTITY xxe SYSTEM "{secret.as_uri()}">
  <!ENTITY big "EXPANDED-INTERNAL">
]>
<iati-activities version="2.03">{_activity(_tx()).replace("<narrative>Reporter", "<narrative>&xxe; &big;")}
</iati-activities>"""
    )
    try:
        items = list(iati.read(path))
    except LoadError:
        return  # refusing the file is fine too
    assert "TOP-SECRET" not in repr(items) and "EXPANDED" not in repr(items)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?>\n<!-- c -->\n<iati-activities version="2.03">\n<iati-activity>', True),
        (b'\xef\xbb\xbf<iati-activities version="2.01"><iati-activity><iati-identifier>X', True),
        ('<?xml version="1.0" encoding="UTF-16"?><iati-activities>'.encode("utf-16"), True),
        (b'<?xml version="1.0"?><rss version="2.0"><channel><iati-activities>', False),
        (b'<grants><grant id="1"/></grants>', False),
        (b'{"grants": [{"id": "360G-1", "iati-activities": 1}]}', False),
        (b"id,title,amount\n1,iati-activities,5\n", False),
        (b"", False),
        (b"\x00\x01\x02garbage", False),
    ],
)
def test_detect(head: bytes, expected: bool) -> None:
    assert iati.detect(head) is expected
