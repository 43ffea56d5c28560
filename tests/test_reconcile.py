"""After loads, the passes run in order and the dashboard's copy is refreshed; all real files in one
store hold the contract's invariants, identities never hold two registered identifiers, and the
de-duplicated total is the raw total less exactly the linked duplicates."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from data_sources import columnar, organisations, orgids, queries
from data_sources.cli import main
from data_sources.duplicates import duplicate_links
from data_sources.quality import quality_report
from data_sources.reconcile import ReconcileError, reconcile
from data_sources.store import allocations
from tests.test_real_files import _stream_files

A = allocations.c


def test_load_runs_the_passes_and_refreshes_the_copy(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    assert main(["load", "--db", url, *map(str, _stream_files())]) == 0
    out = capsys.readouterr().out
    assert "reconciled: places" in out and "organisations" in out and "dashboard copy" in out

    # The contract's invariants over every stream at once.
    with engine.connect() as conn:
        per_record = conn.execute(select(A.source, A.record_id, func.sum(A.allocation_share), func.count())
                                  .group_by(A.source, A.record_id)).all()
        assert all(abs(total - 1) < 1e-9 for _s, _r, total, _n in per_record)
        usd = [v for (v,) in conn.execute(select(A.amount_usd).where(A.amount_usd.is_not(None)))]
        assert all(v == v and abs(v) != float("inf") for v in usd)
        aliases = organisations.organisation_aliases.c
        identities = conn.execute(select(aliases.org_key, aliases.value, aliases.source)
                                  .where(aliases.registered.is_(True))).all()
        ledger_usd = conn.execute(select(func.coalesce(func.sum(duplicate_links.c.amount_usd), 0.0))).scalar_one()
        linked_rows = conn.execute(select(func.count()).where(A.duplicate_of.is_not(None))).scalar_one()
        raw_usd = conn.execute(select(func.coalesce(func.sum(A.amount_usd), 0.0))).scalar_one()
    registered: dict[str, set[str]] = {}
    for key, value, source in identities:
        registered.setdefault(key, set()).add(orgids.parse_identifier(value, source).value)
    assert registered and all(len(ids) == 1 for ids in registered.values()), "one registered identifier each"

    counted = queries.summary(engine)["usd"]
    assert counted == pytest.approx(raw_usd - ledger_usd)
    assert queries.summary(engine)["duplicate_rows_excluded"] == linked_rows

    # The copy the load left is the one for the current data version: the app starts warm.
    version = queries.data_version(engine)
    assert (columnar.folder_for(engine, version) / "meta.json").exists()
    assert quality_report(engine)["overall"]["rows"] == sum(n for *_k, n in per_record)

    # Running the passes again changes nothing (the data version stays).
    assert main(["reconcile", "--db", url]) == 0
    assert queries.data_version(engine) == version


def test_a_failing_pass_keeps_nothing_of_the_run_and_names_the_pass(engine):
    assert main(["load", "--db", engine.url.render_as_string(hide_password=False),
                 str(_stream_files()[0])]) == 0
    before = queries.data_version(engine)
    with engine.begin() as conn:  # a ledger the duplicates pass cannot write
        conn.execute(text("DROP TABLE duplicate_links"))
        conn.execute(text("CREATE TABLE duplicate_links (nonsense INTEGER)"))
    with pytest.raises(ReconcileError, match="the duplicates pass failed"):
        reconcile(engine)
    assert queries.data_version(engine) == queries.data_version(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(allocations)).scalar_one() > 0


def test_unknown_pass_is_refused(sqlite_engine):
    with pytest.raises(ValueError, match="unknown pass"):
        reconcile(sqlite_engine, ("teleport",))
