"""Organisation identifiers and names: normalisation, kinds, the fuzzy rule (pure functions)."""

from __future__ import annotations

import pytest

from data_sources import orgids


@pytest.mark.parametrize(
    ("raw", "source", "value", "kind"),
    [
        ("GB-CHC-1159982", "360giving", "GB-CHC-1159982", orgids.ORG_ID),
        (" gb-chc- 1159982 ", "360giving", "GB-CHC-1159982", orgids.ORG_ID),
        ("GB-COH-213890", "iati", "GB-COH-00213890", orgids.ORG_ID),  # Companies House numbers have 8 characters
        ("GB-COH-IP031605", "360giving", "GB-COH-IP031605", orgids.ORG_ID),
        ("NL-KVK-30214009", "iati", "NL-KVK-30214009", orgids.ORG_ID),
        ("CA-CRA_ACR-123456789RR0001", "iati", "CA-CRA_ACR-123456789RR0001", orgids.ORG_ID),
        ("XI-GRID-grid.17063.33", "360giving", "XI-GRID-GRID.17063.33", orgids.ORG_ID),
        ("XM-OCHA-FTS8908", "ocha_fts", "XM-OCHA-FTS8908", orgids.ORG_ID),
        # DAC codes, every way IATI and the CRS write them
        ("XM-DAC-41114", "iati", "XM-DAC-41114", orgids.DAC),
        ("44001", "iati", "XM-DAC-44001", orgids.DAC),
        ("DAC-1601", "iati", "XM-DAC-1601", orgids.DAC),
        ("XM-DAC-05", "oecd_crs", "XM-DAC-5", orgids.DAC),
        ("XM-DAC-5-7", "iati", "XM-DAC-5-7", orgids.DAC),
        # org-id shaped, with a real country code, on a list the shipped file does not name
        ("US-GOV-1", "iati", "US-GOV-1", orgids.ORG_ID_UNLISTED),
        ("KR-GOV-051", "iati", "KR-GOV-051", orgids.ORG_ID_UNLISTED),
        # IATI's legacy country + agency code form
        ("GB-1", "iati", "GB-1", orgids.IATI_LEGACY),
        ("CH-4", "iati", "CH-4", orgids.IATI_LEGACY),
        # local to the source
        ("44001", "360giving", "44001", orgids.LOCAL),  # a bare number is a DAC code only in IATI/CRS files
        ("TF", "iati", "TF", orgids.LOCAL),
        ("360G-EFF-001b000003VLxCp", "360giving", "360G-EFF-001B000003VLXCP", orgids.LOCAL),
        ("AA-AAA-123456789", "iati", "AA-AAA-123456789", orgids.LOCAL),  # AA is no country: IATI's example
        ("AF-0101", "hdx_3w", "AF-0101", orgids.LOCAL),  # the legacy form only counts in IATI files
    ],
)
def test_parse_identifier(raw, source, value, kind):
    parsed = orgids.parse_identifier(raw, source)
    assert (parsed.value, parsed.kind) == (value, kind)
    assert parsed.registered == (kind != orgids.LOCAL)


def test_empty_identifiers_are_none():
    assert orgids.parse_identifier(None) is None
    assert orgids.parse_identifier("  ") is None
    assert orgids.clean_identifier("") is None


def test_crs_donor_code_is_the_dac_org_id():
    assert orgids.dac_identifier("5") == "XM-DAC-5"
    assert orgids.dac_identifier("1601.0") == "XM-DAC-1601"
    assert orgids.dac_identifier("Germany") is None


def test_prefix_list_has_the_main_lists_with_names():
    shipped = orgids.prefixes()
    for code in ("GB-CHC", "GB-SC", "GB-NIC", "GB-COH", "GB-GOR", "GB-EDU", "GB-LAE", "XM-DAC", "XI-IATI",
                 "US-EIN", "NL-KVK", "DE-CR", "CA-CRA_ACR", "XM-OCHA", "XI-GRID"):
        assert shipped[code].name, code
    assert shipped["GB-CHC"].name == "Charity Commission"
    assert all(p.country == p.code[:2] for p in shipped.values())


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The Example Trust", "Example Trust"),
        ("Example Trust Ltd.", "EXAMPLE TRUST LIMITED"),
        ("Esmée Fairbairn Foundation", "Esmee Fairbairn Foundation"),
        ("Bill & Melinda Gates Foundation", "Bill and Melinda Gates Foundation"),
        ("United Nations Children's Fund", "United Nations Childrens Fund"),
        ("World Health Organization", "World Health Organisation"),
        ("Deutsche Welthungerhilfe e. V.", "Deutsche Welthungerhilfe e.V."),
    ],
)
def test_names_that_normalise_equal(a, b):
    assert orgids.normalise_name(a) == orgids.normalise_name(b)


def test_name_key_ignores_word_order_but_normalise_name_keeps_it():
    assert orgids.name_key("Germany, Government of") == orgids.name_key("Government of Germany")
    assert orgids.normalise_name("Germany, Government of") == "germany government of"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The Example Trust", "The Example Trusts Foundation"),
        ("Save the Children UK", "Save the Children"),
        ("The Smith Charitable Trust", "The Smyth Charitable Trust"),
    ],
)
def test_different_names_stay_different(a, b):
    assert orgids.normalise_name(a) != orgids.normalise_name(b)


def test_a_name_is_never_empty_text():
    assert orgids.normalise_name("  ... ") is None
    assert orgids.normalise_name(None) is None
    assert orgids.normalise_name("The") == "the"  # a name that is only "The" keeps it
    assert orgids.normalise_name("Ltd") == "ltd"


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [
        ("afganistan relief committee", "afghanistan relief committee", True),
        ("ministry of planning and developement", "ministry of planning and development", True),
        ("united nations human settlement programme", "united nations human settlements programme", True),
        ("smith charitable trust", "smyth charitable trust", False),  # a short word: a different charity
        ("childrens hope foundation", "children of hope foundation", False),  # a word more
        ("example trust", "example trusts foundation", False),
        ("1st kirkby scout group", "2nd kirkby scout group", False),  # numbers must match
        ("mathematics", "mathematica", False),  # one word is not enough context
        ("oxfam india", "oxfam indie", False),
    ],
)
def test_near_names(a, b, near):
    assert orgids.near_names(a, b) is near
    assert orgids.near_names(b, a) is near
