"""Smoke test of the benchmarks at a tiny size: the generator's files load whole, run.py's figures hold.

The real measurements run at 100,000 rows and more (``python benchmarks/run.py --rows 1000000``); here
about 2,000 rows check that the pieces fit: the generator is deterministic and promises the row count the
loaders store, and run.py's last line is one JSON object with positive figures and budget verdicts.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import generate as gen
from benchmarks import run

ROWS = 2_000


def test_generator_is_deterministic_and_promises_about_n_rows(tmp_path):
    first = gen.generate(tmp_path / "a", ROWS, seed=11)
    second = gen.generate(tmp_path / "b", ROWS, seed=11)
    assert [p.name for p in first] == [gen.IATI_FILE, gen.GIVING_FILE, gen.HDX_FILE]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert (tmp_path / "a" / gen.MANIFEST_FILE).read_bytes() == (tmp_path / "b" / gen.MANIFEST_FILE).read_bytes()
    other = gen.generate(tmp_path / "c", ROWS, seed=12)
    assert other[0].read_bytes() != first[0].read_bytes()

    manifest = gen.read_manifest(tmp_path / "a")
    # The last record of a file may overshoot by its split (countries x sectors x transactions).
    assert ROWS <= manifest["rows"] <= ROWS + 100
    assert manifest["rows"] == sum(info["rows"] for info in manifest["files"].values())
    iati = manifest["files"]["iati"]
    assert iati["rows"] > iati["records"], "some IATI records split over several countries or sectors"
    assert manifest["files"]["360giving"]["rows"] >= manifest["files"]["360giving"]["records"]
    assert manifest["files"]["hdx_3w"]["rows"] == manifest["files"]["hdx_3w"]["records"]


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_run_measures_loads_and_callbacks_at_a_tiny_size(tmp_path, capsys):
    work = tmp_path / "work"
    code = run.main(["--rows", str(ROWS), "--out", str(work), "--seed", "5", "--no-probe", "--steps", "3", "--keep"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(last)

    manifest = gen.read_manifest(work)
    assert figures["rows_expected"] == manifest["rows"]
    assert figures["rows_stored"] == manifest["rows"], "the loaders store every promised allocation row"
    for source, load in figures["load"].items():
        assert load["status"] == "succeeded", source
        assert load["records_rejected"] == 0, source
        assert load["rows_stored"] == manifest["files"][source]["rows"], source
        for key in ("load_rows_per_s", "load_peak_rss_mib", "kernel_rows_per_s", "ratio", "file_mb",
                    "read_ahead_child_peak_mib", "store_write_rows_per_s", "store_write_ratio"):
            assert _positive(load[key]), (source, key, load[key])
        assert load["read_ahead"] == run.READ_AHEAD == "1"  # every load read ahead, as the probe's would
        # The store's write alone is never slower than the whole load, which also parses.
        assert load["store_write_rows_per_s"] > load["load_rows_per_s"], source

    callbacks = figures["callbacks"]
    assert callbacks["errors"] == []
    assert callbacks["steps"] == 3
    assert callbacks["consistent_with_kernel"] is True
    for key in ("app_p50_ms", "app_p95_ms", "kernel_p50_ms", "kernel_p95_ms", "overhead_p95_ratio",
                "map_update_bytes_max", "table_page_bytes_max", "startup_s", "worker_rss_mib"):
        assert _positive(callbacks[key]), (key, callbacks[key])
    assert {"sync", "map-choropleth.figure", "rows"} <= set(callbacks["per_callback"])

    budgets = figures["budgets"]
    for name in ("filter_change_p95_ms", "overhead_p95_ratio", "map_update_bytes", "table_page_bytes", "startup_s",
                 "load_iati_vs_kernel", "rows_stored_as_generated"):
        assert budgets[name]["pass"] in (True, False), name
    assert budgets["rows_stored_as_generated"]["pass"] is True

    # The pandas kernel (used without DuckDB) agrees with the DuckDB one on the same store.
    import duckdb  # noqa: F401  (in the test extras: the DuckDB kernel is what budgets compare against)

    from data_sources.filters import Filters

    table = run.read_table(f"sqlite:///{work / 'store.sqlite'}")
    duck = run.DuckKernel(table)
    pandas_kernel = run.PandasKernel(table.copy())
    for filters in (Filters(), Filters(themes=("WASH", "Health")), Filters(sources=("iati",), year_from=2015),
                    Filters(q="water")):
        assert duck.count(filters) == pandas_kernel.count(filters)
        (d_usd, d_records, d_funders, d_recipients, d_rows, *_), _ = duck.headline(filters)
        (p_usd, p_records, p_funders, p_recipients, p_rows, *_), _ = pandas_kernel.headline(filters)
        assert (d_records, d_funders, d_recipients, d_rows) == (p_records, p_funders, p_recipients, p_rows)
        assert d_usd == pytest.approx(p_usd)
        assert len(duck.country_totals(filters)) == len(pandas_kernel.country_totals(filters))
