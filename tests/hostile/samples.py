"""Small valid files of every format the loaders read, to be written, re-encoded, cut and mutated.

Used by tests/test_hostile_files.py, tests/test_fuzz.py and benchmarks/fuzz_parsers.py. Each sample
is text with accented names and a pound sign (so the encodings differ), a known number of
records and the loader that must read it. Nothing here is a binary blob: workbooks are built with
openpyxl at test time (``write_xlsx``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IATI = """<?xml version="1.0" encoding="UTF-8"?>
<iati-activities version="2.03" generated-datetime="2024-01-01T00:00:00Z">
 <iati-activity default-currency="EUR">
  <iati-identifier>XM-TEST-1</iati-identifier>
  <reporting-org ref="XM-TEST" type="10"><narrative>Agence française de développement</narrative></reporting-org>
  <title><narrative>Eau potable à Bamako, £ et €</narrative></title>
  <participating-org role="4" type="22"><narrative>Société Malienne d'Eau</narrative></participating-org>
  <recipient-country code="ML" percentage="100"/>
  <sector code="14030" percentage="100"/>
  <transaction>
   <transaction-type code="3"/>
   <transaction-date iso-date="2023-05-01"/>
   <value value-date="2023-05-01">1500.50</value>
  </transaction>
  <transaction>
   <transaction-type code="2"/>
   <transaction-date iso-date="2023-01-15"/>
   <value currency="GBP" value-date="2023-01-15">-200</value>
  </transaction>
 </iati-activity>
 <iati-activity default-currency="USD">
  <iati-identifier>XM-TEST-2</iati-identifier>
  <reporting-org ref="XM-TEST" type="10"><narrative>Agence française de développement</narrative></reporting-org>
  <title><narrative>Santé à Mopti</narrative></title>
  <recipient-country code="ML"/>
  <budget type="1" status="2">
   <period-start iso-date="2024-01-01"/>
   <period-end iso-date="2024-12-31"/>
   <value value-date="2024-01-01">30000</value>
  </budget>
 </iati-activity>
</iati-activities>
"""

GIVING_HEADER = [
    "Identifier", "Title", "Currency", "Amount Awarded", "Award Date", "Recipient Org:Identifier",
    "Recipient Org:Name", "Funding Org:Identifier", "Funding Org:Name", "Beneficiary Location:Name",
]  # fmt: skip
GIVING_ROWS = [
    ["360G-test-1", "Café in Tréguier, £ for chairs", "GBP", "1,250.50", "2023-03-01", "GB-CHC-1",
     "Société Café", "GB-CHC-9", "Fondation Générale", "England"],
    ["360G-test-2", "Crèche à Lyon", "EUR", "-300", "15/04/2023", "GB-CHC-2", "Crèche Étoile", "GB-CHC-9",
     "Fondation Générale", "France"],
    ["360G-test-3", "Zero grant (withdrawn)", "GBP", "0", "2023-05-02", "GB-CHC-3", "Zoë's Trust", "GB-CHC-9",
     "Fondation Générale", "Wales"],
]  # fmt: skip

GIVING_JSON = """{
  "grants": [
    {"id": "360G-json-1", "title": "Café in Tréguier, £ for chairs", "currency": "GBP", "amountAwarded": 1250.5,
     "awardDate": "2023-03-01",
     "recipientOrganization": [{"id": "GB-CHC-1", "name": "Société Café"}],
     "fundingOrganization": [{"id": "GB-CHC-9", "name": "Fondation Générale"}],
     "beneficiaryLocation": [{"name": "England"}]},
    {"id": "360G-json-2", "title": "Crèche à Lyon", "currency": "EUR", "amountAwarded": "1,000",
     "awardDate": "2023-04-15T10:00:00+01:00",
     "recipientOrganization": [{"id": "GB-CHC-2", "name": "Crèche Étoile"}],
     "fundingOrganization": [{"id": "GB-CHC-9", "name": "Fondation Générale"}]}
  ]
}
"""

FTS_HEADER = [
    "date", "description", "amountUSD", "srcOrganization", "srcOrganizationTypes", "destOrganization",
    "destOrganizationTypes", "destGlobalClusters", "destLocations", "destUsageYearStart", "destUsageYearEnd",
    "status", "originalAmount", "originalCurrency", "id",
]  # fmt: skip
FTS_ROWS = [
    ["2020-02-01", "Aide d'urgence à Hérat, £ converted", "150000", "Gouvernement français", "Government",
     "Médecins Sans Frontières", "NGO", "Health", "AFG", "2020", "2020", "paid", "", "", "900001"],
    ["2020-03-15", "Eau et hygiène", "-2500", "Königreich", "Government", "Ökumenische Hilfe", "NGO",
     "Water Sanitation Hygiene", "AFG", "2020", "2020", "commitment", "-2000", "GBP", "900002"],
]  # fmt: skip

FTS_JSON = """{
  "data": {
    "incoming": {"fundingTotal": 152500},
    "flows": [
      {"id": "800001", "versionId": 1, "amountUSD": 150000, "status": "paid", "date": "2020-02-01T00:00:00Z",
       "description": "Aide d'urgence à Hérat, £ converted",
       "sourceObjects": [{"type": "Organization", "name": "Gouvernement français",
                          "organizationTypes": ["Government"]}],
       "destinationObjects": [{"type": "Organization", "name": "Médecins Sans Frontières",
                               "organizationTypes": ["NGO"]},
                              {"type": "Location", "name": "Afghanistan", "iso3": "AFG"},
                              {"type": "GlobalCluster", "name": "Health"},
                              {"type": "UsageYear", "name": "2020"}]},
      {"id": "800002", "versionId": 2, "amountUSD": 2500, "status": "commitment", "date": "2020-03-15T00:00:00Z",
       "originalAmount": 2000, "originalCurrency": "GBP", "description": "Eau et hygiène",
       "sourceObjects": [{"type": "Organization", "name": "Königreich"}],
       "destinationObjects": [{"type": "Location", "name": "Afghanistan", "iso3": "AFG"}]}
    ]
  },
  "meta": {"count": 2}
}
"""

CRS_HEADER = [
    "Year", "DonorCode", "DonorName", "CrsID", "RecipientName", "PurposeCode", "PurposeName", "ProjectTitle",
    "USD_Commitment", "USD_Disbursement",
]  # fmt: skip
CRS_ROWS = [
    ["2021", "4", "France", "2021000001", "Mali", "14030", "Basic drinking water supply",
     "Accès à l'eau potable, £ inclus", "0.5", "0.25"],
    ["2021", "4", "France", "2021000002", "Côte d'Ivoire", "12220", "Basic health care", "Santé à Abidjan",
     "-0.1", ""],
]  # fmt: skip

HDX_ROWS = [
    ["Organisation", "Sector", "Admin 1", "Admin 1 P-code", "Budget (USD)", "Activité"],
    ["#org+name", "#sector", "#adm1+name", "#adm1+code", "#value+usd", "#activity+name"],
    ["Médecins du Monde", "Santé", "Hérat", "AF21", "1,000", "Clinique mobile £"],
    ["Action contre la Faim", "Nutrition", "Kaboul", "AF01", "0", "Dépistage"],
    ["Église d'Orient", "Éducation", "Balkh", "AF22", "", "École"],
]

TABLE_HEADER = ["Réf", "Bailleur", "Montant", "Devise", "Date", "Pays", "Projet"]
TABLE_ROWS = [
    ["T-1", "Fondation Générale", "12,500", "EUR", "05/01/2023", "Mali", "Puits à Kayes, £ inclus"],
    ["T-2", "Fondation Générale", "-500", "EUR", "14/02/2023", "Sénégal", "Correction"],
    ["T-3", "Fondation Générale", "0", "GBP", "01/03/2023", "Kenya", "Zero"],
]
TABLE_MAPPING = {
    "table": {"source_name": "hostile"},
    "columns": {
        "id": "Réf", "funder": "Bailleur", "amount": "Montant", "currency": "Devise", "date": "Date",
        "country": "Pays", "title": "Projet",
    },
}  # fmt: skip
TABLE_MAPPING_TOML = """[table]
source_name = "hostile"

[columns]
id = "Réf"
funder = "Bailleur"
amount = "Montant"
currency = "Devise"
date = "Date"
country = "Pays"
title = "Projet"
"""


def _csv(rows: Iterable[Sequence[Any]], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


@dataclass(frozen=True)
class Sample:
    """A valid file: its text, the loader (registry name) that reads it and how many records it gives."""

    name: str  # a short label, also the file's stem
    loader: str
    suffix: str
    text: str
    records: int
    rejections: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # extra read() arguments (not for load_file)

    @property
    def is_xml(self) -> bool:
        return self.suffix == ".xml"


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample("iati", "iati", ".xml", IATI, records=3),
        Sample("giving_csv", "360giving", ".csv", _csv([GIVING_HEADER, *GIVING_ROWS]), records=3),
        Sample("giving_json", "360giving", ".json", GIVING_JSON, records=2),
        Sample("fts_csv", "ocha_fts", ".csv", _csv([FTS_HEADER, *FTS_ROWS]), records=2),
        Sample("fts_json", "ocha_fts", ".json", FTS_JSON, records=2),
        Sample("crs_csv", "oecd_crs", ".csv", _csv([CRS_HEADER, *CRS_ROWS]), records=3),
        Sample("hdx_csv", "hdx_3w", ".csv", _csv(HDX_ROWS), records=3),
        Sample("table_csv", "table", ".csv", _csv([TABLE_HEADER, *TABLE_ROWS]), records=3,
               options={"mapping": TABLE_MAPPING}),
    )
}

# How a sample is written: codec name -> (Python codec, XML encoding declaration).
ENCODINGS: dict[str, tuple[str, str]] = {
    "utf-8": ("utf-8", "UTF-8"),
    "utf-8-bom": ("utf-8-sig", "UTF-8"),
    "utf-16-le-bom": ("utf-16-le", "UTF-16"),
    "utf-16-be-bom": ("utf-16-be", "UTF-16"),
    "latin-1": ("latin-1", "ISO-8859-1"),
    "cp1252": ("cp1252", "windows-1252"),
}


def encode(sample: Sample, encoding: str = "utf-8", newline: str = "\n") -> bytes:
    """The sample's bytes in ``encoding`` (a key of ``ENCODINGS``), lines ending in ``newline``.

    ``newline`` may be ``"\\n"``, ``"\\r\\n"``, ``"\\r"`` or ``"mixed"`` (the three in turn). Quoted
    CSV fields in the samples hold no line breaks, so every line ending is a record's end. XML
    gets the declaration of its encoding. Characters the encoding lacks (``€`` in Latin-1) become
    ``?``... except that the samples keep ``€`` only in XML, where it becomes a character reference.
    """
    codec, declared = ENCODINGS[encoding]
    text = sample.text
    if sample.is_xml:
        text = re.sub(r'encoding="[^"]*"', f'encoding="{declared}"', text, count=1)
    lines = text.split("\n")
    if newline == "mixed":
        endings = ["\n", "\r\n", "\r"]
        text = "".join(line + endings[i % 3] for i, line in enumerate(lines[:-1])) + lines[-1]
    else:
        text = newline.join(lines)
    errors = "xmlcharrefreplace" if sample.is_xml else "replace"
    data = text.encode(codec, errors=errors)
    if encoding.startswith("utf-16-le"):
        data = codecs.BOM_UTF16_LE + data
    elif encoding.startswith("utf-16-be"):
        data = codecs.BOM_UTF16_BE + data
    return data


def write(folder: Path, sample: Sample, encoding: str = "utf-8", newline: str = "\n", stem: str | None = None) -> Path:
    path = folder / f"{stem or sample.name}{sample.suffix}"
    path.write_bytes(encode(sample, encoding, newline))
    return path


def write_mapping(folder: Path) -> Path:
    path = folder / "hostile-mapping.toml"
    path.write_text(TABLE_MAPPING_TOML, encoding="utf-8")
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]], hidden: Sequence[str] = ()) -> Path:
    """A workbook with one sheet per item (rows as given), the named ones hidden."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
        if title in hidden:
            ws.sheet_state = "hidden"
    wb.save(path)
    return path


def patch_xlsx(path: Path, part: str, replacements: dict[str, str]) -> Path:
    """Rewrite one part of a workbook (e.g. ``xl/worksheets/sheet1.xml``), text replaced as given.

    For what openpyxl does not write: a formula's saved value, a number too large for a float.
    Each ``old`` text must be in the part.
    """
    import zipfile

    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    text = parts[part].decode("utf-8")
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{old!r} is not in {part}")
        text = text.replace(old, new)
    parts[part] = text.encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dest:
        for name, content in parts.items():
            dest.writestr(name, content)
    return path
