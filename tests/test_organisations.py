"""Organisation identities across streams, on SQLite and PostgreSQL: hand-made cases, then every real file."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, select

from data_sources import organisations as orgs
from data_sources import orgids
from data_sources.loading import load_file
from data_sources.store import allocations, store_state
from tests.test_real_files import _stream_files

# (source, funder_id, funder_name, recipient_id, recipient_name, implementer_name)
HAND_MADE = [
    # the same charity: its org-id in one stream, written differently or missing in others
    ("360giving", "GB-CHC-123456", "Example Trust", None, "Some Recipient", None),
    ("iati", " gb-chc-123456", "The Example Trust", None, None, None),
    ("ocha_fts", None, "The Example Trust", None, None, None),
    # a near name, with a different registered id: another charity
    ("360giving", "GB-CHC-222222", "Example Trusts Foundation", None, "Some Recipient", None),
    # a near name of a different charity, one letter apart in a short word: not merged
    ("360giving", "GB-CHC-333333", "The Smith Charitable Trust", None, None, None),
    ("ocha_fts", None, "The Smyth Charitable Trust", None, None, None),
    ("ocha_fts", None, "Children's Hope Foundation", None, None, None),
    ("ocha_fts", None, "Children of Hope Foundation", None, None, None),
    # an IATI ref and a CRS donor code for the same donor
    ("iati", "DAC-1601", "Bill and Melinda Gates Foundation", None, None, None),
    ("oecd_crs", "XM-DAC-1601", "Bill & Melinda Gates Foundation", None, None, None),
    ("iati", "44001", "International Bank for Reconstruction and Development", None, None, None),
    ("iati", None, None, "XM-DAC-44001", "IBRD", None),
    # two different identifiers under one name, and the name again without an id
    ("360giving", "GB-CHC-444444", "Community Action Trust", None, None, None),
    ("360giving", "GB-SC-SC012345", "Community Action Trust", None, None, None),
    ("ocha_fts", None, "Community Action Trust", None, None, None),
    # a typo in a long word: one identity; the implementer column counts too
    ("hdx_3w", None, None, "AF-123", "Afghanistan Relief Committee", "Afghanistan Relief Committee"),
    ("ocha_fts", None, None, None, "Afganistan Relief Committee", None),
    # a source-local id ties two names within its source only
    ("iati", "TF", "Trust Funds", None, None, None),
    ("iati", "TF", "Trust Funds (World Bank)", None, None, None),
    ("hdx_3w", "TF", "Tech Foundation", None, None, None),
]


def _insert(engine, rows=HAND_MADE) -> None:
    with engine.begin() as conn:
        conn.execute(allocations.insert(), [
            {"source": source, "record_id": f"r{i}", "alloc": 0, "allocation_share": 1.0, "flow_type": "grant",
             "geo_level": "unknown", "source_file": "hand-made", "load_id": 1, "funder_id": funder_id,
             "funder_name": funder_name, "recipient_id": recipient_id, "recipient_name": recipient_name,
             "implementer_name": implementer}
            for i, (source, funder_id, funder_name, recipient_id, recipient_name, implementer) in enumerate(rows)])


def _build(engine) -> dict:
    with engine.begin() as conn:
        return orgs.build_organisations(conn)


def _key(engine, value: str) -> str | None:
    with engine.connect() as conn:
        return orgs.identity_of(conn, value)


def test_hand_made_identities(engine):
    _insert(engine)
    stats = _build(engine)
    assert stats["changed"] and stats["refused"] >= 1

    example = _key(engine, "GB-CHC-123456")
    assert example == "GB-CHC-123456"
    assert _key(engine, " gb-chc-123456") == _key(engine, "The Example Trust") == example
    assert _key(engine, "example trust") == example
    assert _key(engine, "Example Trusts Foundation") == _key(engine, "GB-CHC-222222") == "GB-CHC-222222"

    assert _key(engine, "The Smith Charitable Trust") == "GB-CHC-333333"
    assert _key(engine, "The Smyth Charitable Trust") not in (None, "GB-CHC-333333")
    assert _key(engine, "Children's Hope Foundation") != _key(engine, "Children of Hope Foundation")

    assert _key(engine, "DAC-1601") == _key(engine, "XM-DAC-1601") == _key(engine, "Bill & Melinda Gates Foundation")
    assert _key(engine, "XM-DAC-1601") == "XM-DAC-1601"
    assert _key(engine, "IBRD") == _key(engine, "44001") == "XM-DAC-44001"

    # one name, two charities: never merged; the name alone joins neither
    two = {_key(engine, "GB-CHC-444444"), _key(engine, "GB-SC-SC012345")}
    assert two == {"GB-CHC-444444", "GB-SC-SC012345"}
    with engine.connect() as conn:
        bare = conn.execute(select(orgs.organisation_aliases.c.org_key).where(
            orgs.organisation_aliases.c.source == "ocha_fts",
            orgs.organisation_aliases.c.value == "Community Action Trust")).scalar_one()
    assert bare == "n:community-action-trust"

    assert _key(engine, "Afganistan Relief Committee") == _key(engine, "Afghanistan Relief Committee")
    assert _key(engine, "Trust Funds") == _key(engine, "Trust Funds (World Bank)") != _key(engine, "Tech Foundation")
    assert _key(engine, "nobody at all") is None and _key(engine, "") is None

    with engine.connect() as conn:
        names = orgs.display_names(conn, [example, "XM-DAC-1601", "GB-CHC-222222"])
        assert names == {example: "The Example Trust", "XM-DAC-1601": "Bill and Melinda Gates Foundation",
                         "GB-CHC-222222": "Example Trusts Foundation"}
        row = conn.execute(select(orgs.organisations).where(orgs.organisations.c.org_key == example)).mappings().one()
        assert (row["identifier_kind"], row["registry"], row["rows"]) == ("org-id", "Charity Commission", 3)
        assert row["sources"] == "360giving,iati,ocha_fts"


def test_no_identity_holds_two_registered_identifiers(engine):
    _insert(engine)
    _build(engine)
    with engine.connect() as conn:
        _assert_one_identifier_each(conn)


def test_lookups_for_filters_dropdowns_and_profiles(engine):
    _insert(engine)
    _build(engine)
    A = allocations.c
    with engine.connect() as conn:
        ids, names = orgs.members(conn, ["GB-CHC-123456"])
        assert ids == [" gb-chc-123456", "GB-CHC-123456"]
        assert names == ["Example Trust", "The Example Trust"]

        def rows(keys, id_col, name_col):
            clause = orgs.member_clause(conn, keys, id_col, name_col, A.source)
            return sorted(conn.execute(select(A.record_id).where(clause)).scalars())

        assert rows(["GB-CHC-123456"], A.funder_id, A.funder_name) == ["r0", "r1", "r2"]
        # the bare name used by two charities selects only the rows without an id
        assert rows(["n:community-action-trust"], A.funder_id, A.funder_name) == ["r14"]
        assert rows(["GB-SC-SC012345"], A.funder_id, A.funder_name) == ["r13"]
        # a local id counts only in its own source
        trust_funds = orgs.identity_of(conn, "Trust Funds")
        assert rows([trust_funds], A.funder_id, A.funder_name) == ["r17", "r18"]
        relief = orgs.identity_of(conn, "Afghanistan Relief Committee")
        assert rows([relief], A.recipient_id, A.recipient_name) == ["r15", "r16"]
        assert rows([relief], None, A.implementer_name) == ["r15"]
        assert rows(["no-such-key"], A.funder_id, A.funder_name) == []

        found = orgs.search(conn, "example", 10)
        assert [f["org_key"] for f in found] == ["GB-CHC-123456", "GB-CHC-222222"]
        assert orgs.search(conn, "gb-sc", 10)[0]["org_key"] == "GB-SC-SC012345"
        assert orgs.search(conn, "100%_", 10) == []

        profile = orgs.profile_identifiers(conn, "XM-DAC-1601")
        assert profile["display_name"] == "Bill and Melinda Gates Foundation"
        assert [(i["value"], i["normalised"], i["sources"]) for i in profile["ids"]] == [
            ("DAC-1601", "XM-DAC-1601", {"iati": 1}), ("XM-DAC-1601", "XM-DAC-1601", {"oecd_crs": 1})]
        assert {n["value"] for n in profile["names"]} == {"Bill and Melinda Gates Foundation",
                                                          "Bill & Melinda Gates Foundation"}
        assert orgs.profile_identifiers(conn, "nobody") is None


def test_rebuild_is_idempotent_and_marks_the_store_changed_only_when_it_changes(engine):
    with engine.connect() as conn:
        assert orgs.identity_of(conn, "Example Trust") is None  # before any build: no tables, no answer
        assert orgs.search(conn, "x") == [] and orgs.members(conn, ["x"]) == ([], [])
    _insert(engine)

    def revision():
        with engine.connect() as conn:
            return conn.execute(select(store_state.c.revision)).scalar()

    first = _build(engine)
    after_first = revision()
    second = _build(engine)
    assert first["changed"] and not second["changed"]
    assert {k: v for k, v in first.items() if k not in ("changed", "seconds")} == \
           {k: v for k, v in second.items() if k not in ("changed", "seconds")}
    assert revision() == after_first

    with engine.begin() as conn:
        conn.execute(delete(allocations).where(allocations.c.record_id == "r2"))
    third = _build(engine)
    assert third["changed"] and revision() == after_first + 1
    with engine.connect() as conn:
        assert orgs.profile_identifiers(conn, "GB-CHC-123456")["sources"] == "360giving,iati"


def test_a_failed_transaction_leaves_the_previous_identities(engine):
    _insert(engine)
    _build(engine)
    try:
        with engine.begin() as conn:
            conn.execute(delete(allocations))
            assert orgs.build_organisations(conn)["organisations"] == 0
            raise RuntimeError("the load failed")
    except RuntimeError:
        pass
    assert _key(engine, "Example Trust") == "GB-CHC-123456"


def test_all_real_files(engine):
    for path in _stream_files():
        assert load_file(engine, path).status == "succeeded", path
    stats = _build(engine)
    with engine.connect() as conn:
        _assert_one_identifier_each(conn)
        A = allocations.c
        # every funder, recipient and implementer mention is in exactly one identity
        mentions = sum(conn.execute(select(func.count()).where(condition)).scalar() for condition in (
            (func.coalesce(A.funder_id, "") != "") | (func.coalesce(A.funder_name, "") != ""),
            (func.coalesce(A.recipient_id, "") != "") | (func.coalesce(A.recipient_name, "") != ""),
            func.coalesce(A.implementer_name, "") != ""))
        assert conn.execute(select(func.sum(orgs.organisations.c.rows))).scalar() == mentions
        distinct_names = conn.execute(select(func.count(func.distinct(orgs.organisation_aliases.c.normalised)))
                                      .where(orgs.organisation_aliases.c.kind == "name")).scalar()
        # merging happened, but far from everything merged
        assert distinct_names // 2 < stats["organisations"] < stats["mentions"]
        assert stats["registered"] > 900  # most 360Giving recipients carry an org-id

        # the same organisations across streams
        drc = orgs.identity_of(conn, "Danish Refugee Council")
        assert drc == "DK-CVR-20699310"
        assert set(orgs.profile_identifiers(conn, drc)["sources"].split(",")) >= {"iati", "hdx_3w", "ocha_fts"}
        assert orgs.identity_of(conn, "Power to Change Trust") == "GB-CHC-1159982"
        assert orgs.identity_of(conn, "44001") == "XM-DAC-44001"
        assert orgs.identity_of(conn, "Germany") == "XM-DAC-5"
        who = orgs.identity_of(conn, "World Health Organization")
        assert set(orgs.profile_identifiers(conn, who)["sources"].split(",")) >= {"iati", "hdx_3w", "ocha_fts"}
    assert not _build(engine)["changed"]


def _assert_one_identifier_each(conn) -> None:
    """No identity holds two different registered identifiers, and no identifier is in two identities."""
    held: dict[str, set[str]] = defaultdict(set)
    for key, value, source in conn.execute(select(
            orgs.organisation_aliases.c.org_key, orgs.organisation_aliases.c.value,
            orgs.organisation_aliases.c.source).where(orgs.organisation_aliases.c.kind == "id")):
        parsed = orgids.parse_identifier(value, source)
        if parsed.registered:
            held[key].add(parsed.value)
    assert held and all(len(values) == 1 for values in held.values()), {k: v for k, v in held.items() if len(v) > 1}
    identifiers = dict(conn.execute(select(orgs.organisations.c.org_key, orgs.organisations.c.identifier)).all())
    assert all(identifiers[key] == next(iter(values)) for key, values in held.items())
    owners: dict[str, set[str]] = defaultdict(set)
    for key, values in held.items():
        owners[next(iter(values))].add(key)
    assert all(len(keys) == 1 for keys in owners.values())


def test_fuzzy_blocks_large_and_small_find_only_one_edit_pairs():
    # 80 words two edits apart from each other, in one block ("relief"), plus one typo of the first:
    # the large block goes through rapidfuzz's cdist, the small one pair by pair; both find one pair.
    words = [f"k{a}q{b}w{a}r{b}" for a in "abcdefghij" for b in "abcdefgh"]
    large = [f"{w} relief" for w in words] + ["kaqawaxra relief"]
    assert orgs.fuzzy_pairs(large) == [("kaqawara relief", "kaqawaxra relief")]
    assert orgs.fuzzy_pairs(large[:3] + large[-1:]) == [("kaqawara relief", "kaqawaxra relief")]
    assert orgs.fuzzy_pairs(["kaqawara", "kaqawaxra"]) == []  # one-word names are never fuzzy-matched


def test_absurdly_long_ids_and_names_do_not_break_the_pass(engine):
    long_name, long_id = "Very " * 1000 + "Long Trust", "GB-CHC-" + "9" * 3000
    _insert(engine, [("360giving", long_id, long_name, None, None, None),
                     ("iati", "X" * 5000, None, None, None, None)])
    stats = _build(engine)
    assert stats["organisations"] == 2 and stats["registered"] == 0  # ids that long are nobody's register
    with engine.connect() as conn:
        keys = conn.execute(select(orgs.organisations.c.org_key).order_by(orgs.organisations.c.org_key)).scalars()
        assert all(len(key) <= 130 for key in keys)
        assert conn.execute(select(func.count()).select_from(orgs.organisation_aliases)).scalar() == 0


def test_every_party_mention_as_written_gets_its_identity(engine):
    _insert(engine, [*HAND_MADE, ("iati", "  ", "The Example Trust", None, None, None),
                     ("ocha_fts", None, None, None, None, None)])
    stats = _build(engine)
    with engine.connect() as conn:
        found = {(r.role, r.source, r.party_id, r.party_name): r.org_key
                 for r in conn.execute(select(orgs.organisation_mentions))}
        A = allocations.c
        named = sum(conn.execute(select(func.count()).where(
            (func.coalesce(func.trim(id_col), "") != "") | (func.coalesce(func.trim(name_col), "") != ""))).scalar()
            for id_col, name_col in ((A.funder_id, A.funder_name), (A.recipient_id, A.recipient_name)))
    assert stats["party_mentions"] == len(found)
    assert found[("funder", "iati", " gb-chc-123456", "The Example Trust")] == "GB-CHC-123456"
    assert found[("funder", "iati", "  ", "The Example Trust")] == "GB-CHC-123456"  # a blank id: the name decides
    assert found[("funder", "ocha_fts", None, "The Example Trust")] == "GB-CHC-123456"
    assert found[("recipient", "iati", "XM-DAC-44001", "IBRD")] == "XM-DAC-44001"
    assert found[("funder", "hdx_3w", "TF", "Tech Foundation")] != found[("funder", "iati", "TF", "Trust Funds")]
    assert ("funder", "ocha_fts", None, None) not in found and ("recipient", "ocha_fts", None, None) not in found
    with engine.connect() as conn:  # every row naming a party, once
        assert conn.execute(select(func.sum(orgs.organisation_mentions.c.rows))).scalar() == named


def test_filters_options_and_breakdowns_use_identities(engine):
    from data_sources import queries
    from data_sources.filters import Filters

    _insert(engine)
    before = queries.headline(engine, Filters())
    _build(engine)

    def records(filters: Filters) -> list[str]:
        rows, _total = queries.table_page(engine, filters, 0, 100, columns=["record_id"])
        return sorted(r["record_id"] for r in rows)

    assert records(Filters(funders=("GB-CHC-123456",))) == ["r0", "r1", "r2"]
    assert records(Filters(funders=("The Example Trust",))) == ["r1", "r2"]  # an older link's raw name
    assert records(Filters(funders=("gb-chc-123456",))) == []  # no row wrote it so, and it is no identity's key
    assert records(Filters(funders=("n:community-action-trust",))) == ["r14"]
    assert records(Filters(funders=("Community Action Trust",))) == ["r12", "r13", "r14"]  # the raw name: all three
    assert records(Filters(recipients=("XM-DAC-44001",))) == ["r11"]
    relief = _key(engine, "Afghanistan Relief Committee")
    assert records(Filters(recipients=(relief,))) == ["r15", "r16"]

    funders = {o["value"]: o["label"] for o in queries.options(engine, "funder", "", 50)}
    assert funders["GB-CHC-123456"] == "The Example Trust" and funders["XM-DAC-1601"] == \
        "Bill and Melinda Gates Foundation"
    assert not {" gb-chc-123456", "DAC-1601", "44001", "TF"} & set(funders)
    assert queries.options(engine, "funder", "gates", 10) == [
        {"label": "Bill and Melinda Gates Foundation", "value": "XM-DAC-1601"}]
    assert queries.labels_for(engine, "recipient", [relief, "nobody"]) == {relief: "Afghanistan Relief Committee"}
    # raw keys: three for the example charity, two for the Gates foundation, one "TF" for two organisations,
    # two for the relief committee (its 3W code and a misspelt name); identities: one each
    assert (before.funders, queries.headline(engine, Filters()).funders) == (15, 13)
    assert (before.recipients, queries.headline(engine, Filters()).recipients) == (4, 3)
