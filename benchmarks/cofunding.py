"""The co-funder finder's aggregates on a synthetic columnar copy (no store needed):

    python benchmarks/cofunding.py --rows 1000000

A worst case for the pair grouping: funders and recipients drawn at random (3,000 and 100,000 of
them), so almost every row is its own funder x recipient link. Prints seconds per computation, for no
filters and for one place and theme, then one JSON object."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow as pa

from callbacks.context import ColumnarReader
from data_sources import cofunding, columnar
from data_sources.filters import Filters


def synthetic_table(rows: int, seed: int = 1) -> columnar.ColumnarTable:
    rng = np.random.default_rng(seed)

    def names(prefix: str, count: int) -> pa.Array:
        return pa.array([f"{prefix}{i}" for i in rng.integers(0, count, rows)])

    nothing = pa.nulls(rows, pa.string())
    columns = {
        "source": pa.array(rng.choice(["iati", "oecd_crs", "360giving"], rows)),
        "country": pa.array(rng.choice(["KEN", "UGA", "TZA", "ETH", "SOM", "SSD", "NGA", "GHA", "IND", "BGD"], rows)),
        "country_name": nothing, "admin1": nothing, "sector": nothing, "sector_name": nothing,
        "theme": pa.array(rng.choice(["WASH", "Health", "Education", "Food"], rows)),
        "flow_type": pa.array(["disbursement"] * rows),
        "funder_id": names("F", 3000), "funder_name": names("Funder ", 3000),
        "recipient_id": names("R", 100_000), "recipient_name": names("Recipient ", 100_000),
        "title": nothing, "description": nothing, "implementer_name": nothing,
        "record": pa.array([f"r{i}" for i in range(rows)]), "row_id": pa.array(np.arange(rows)),
        "year": pa.array(rng.integers(2010, 2025, rows)), "has_amount": pa.array(np.ones(rows, dtype=np.int64)),
        "usd": pa.array(rng.random(rows) * 1e6), "counted": pa.array(np.ones(rows, dtype=np.int64)),
        "share": pa.array(np.ones(rows)), "amount": pa.array(rng.random(rows)), "fx_rate": pa.array(np.ones(rows)),
        "lat": pa.array(np.zeros(rows)), "lon": pa.array(np.zeros(rows)),
    }
    meta = {"data_version": "synthetic", "dialect": "sqlite", "rows": rows, "format": columnar.FORMAT_VERSION}
    return columnar.ColumnarTable._from_arrow(pa.table(columns), meta)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    reader = ColumnarReader(None, synthetic_table(args.rows))  # the copy answers; no store is read
    figures = {}
    for name, filters in (("all", Filters()), ("KEN-WASH", Filters(countries=("KEN",), themes=("WASH",)))):
        for step, compute in (
            ("ranking", lambda f: cofunding.rank_parties(reader, f, "funder", 25)),
            ("similar", lambda f: cofunding.similar_funders(reader, f, "F1")),
            ("network", lambda f: cofunding.network(reader, f)),
            ("basket", lambda f: cofunding.basket(reader, Filters(funders=("F1", "F2", "F3"), countries=f.countries,
                                                                  themes=f.themes), "funder")),
        ):
            started = time.perf_counter()
            compute(filters)
            figures[f"{name}.{step}"] = round(time.perf_counter() - started, 3)
            print(f"{name:9} {step:8} {figures[f'{name}.{step}']:.3f} s")
    print(json.dumps({"rows": args.rows, "seconds": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
