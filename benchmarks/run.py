# The kernel's SQL is built from fixed column names; every value is a bound parameter.
# ruff: noqa: S608
"""Load and dashboard benchmarks against bare kernels, measured in the same run.

    python benchmarks/run.py --rows 1000000            # generate, load, measure, clean up
    python benchmarks/run.py --rows 1000000 --keep     # ... and keep the files and the store for next time
    python benchmarks/run.py --rows 1000000 --skip-load --keep   # callbacks only, on the kept store
    python benchmarks/run.py --rows 100000 --skip-callbacks --no-probe --profile /tmp/prof   # where loads spend

Options: ``--db URL`` (default: a SQLite file in ``--out``), ``--out DIR`` (default: a folder in the temp
folder, removed at the end unless ``--keep``), ``--seed``, ``--no-probe``, ``--skip-callbacks``, ``--steps N``
(the first N filter changes only), ``--kernel-threads`` (default 1), ``--profile DIR``, ``--read-ahead``,
``--no-floor``.

What it measures (the figures are printed as lines, then once more as one JSON object, the last line):

* **Loads**, per format (IATI XML, 360Giving JSON, HDX 3W CSV written by ``benchmarks/generate.py``):
  ``load_file`` into the store, each in its own process, giving rows/s (wall and CPU) and peak RSS; and,
  in the same run, the raw parse kernel over the same file, each in its own process too: lxml
  ``iterparse`` counting the counted transactions, ``json.load`` of the package, pyarrow (and pandas)
  ``read_csv``. ``ratio`` is load rows/s over kernel rows/s (the same row count for both). Loads read
  ahead (``--read-ahead``, default 1): the parse runs in a child process while the store writes; the
  child's CPU time and peak RSS are counted in the load's. And the **store's write alone**: the same
  rows, built first, inserted into an empty SQLite store (``store_write_ratio``: its rows/s over the
  kernel's, the most a load that writes after it parses could reach; ``--no-floor`` skips it).
  Memory flat in file size: the same loads at a tenth of the rows into a scratch SQLite store
  (``probe``); flat when the full load's peak RSS exceeds the probe's by at most max(32 MiB, 10 %),
  judged only when the probe reads at least two of the loader's chunks (so from about 1,000,000 rows).
* **Callbacks**: an app worker process (``create_app`` on the store, Flask's test client) plays a fixed
  script of about 30 filter changes the way the browser does: the filter-sync callback with the changed
  control, then every callback whose input is the URL's query string (map, headline, charts, table count,
  export links, chips...), then the table's first page of 100 rows. A change's server-side time is the sum
  of those requests. The bare kernel computes, for the same filters (parsed from the URL the app
  produced), the same aggregates with DuckDB (or pandas) over an in-memory copy of the table, one
  thread: country totals with distinct counts, headline figures, the row count, the first page, and
  the chart breakdowns when the app has charts. ``overhead`` is the app's p95 over the kernel's p95.
  The kernel recomputes every state; the app keeps its per-process cache, so a state seen before (a
  reset) is cheap for it. Dropdown option lists do not depend on the filters and are not in the kernel.
  The row count the table shows is checked against the kernel's for every change.
* **Bytes** sent to the browser per map update and per table page (response bodies; gzip size too).
* **Start-up**: from starting the worker process to its first layout on the warm store.
* **Memory** of the app worker (RSS and its high-water mark) after the script.

The ``budgets`` object says pass or fail for the targets at 1,000,000 rows on a 2-core machine: p95 of a
filter change under 250 ms and at most 3x the kernel, map update under 300 KB, table page under 100 KB,
start-up under 10 s, loads at least half the kernel's rows/s, load memory flat in file size.
``--profile DIR`` also writes cProfile files of each load (which slows those loads: profile in a run of
its own) and of the slowest callback (replayed in a fresh app after the script, so the figures are not
affected), and prints their top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gzip
import io
import json
import math
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import generate as gen  # noqa: E402

FORMATS = ("iati", "360giving", "hdx_3w")
# Every load of a run reads ahead in a child process, full and probe alike, so the two compare (see
# data_sources/read_ahead.py); "auto" would read the tenth-size files in-process.
READ_AHEAD = "1"
PAGE_ROWS = 100  # the grid's cacheBlockSize: one page request
BUDGETS = {
    "filter_change_p95_ms": 250.0,
    "overhead_p95_ratio": 3.0,
    "map_update_bytes": 300_000,
    "table_page_bytes": 100_000,
    "startup_s": 10.0,
    "load_vs_kernel_ratio": 0.5,
}
PROBE_FRACTION = 10
MEMORY_FLAT_SLACK_MIB = 32.0
MEMORY_FLAT_SLACK_FRACTION = 0.10


# --- small helpers ---------------------------------------------------------------------------


def _proc_status_mib(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc, in MiB (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _round(value, digits: int = 1):
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    return value


# Request plumbing above the callback itself (the test client, Flask, Dash's dispatch, this script):
# left out of the top lists, where it would only repeat the total.
_WRAPPERS = re.compile(r"(werkzeug|flask|dash/backends|dash/_callback|benchmarks/run\.py|contextvars|'run' of)")


def _top_functions(profile: cProfile.Profile, limit: int = 10) -> dict[str, list[str]]:
    """The ``limit`` functions with the largest cumulative and own (``tottime``) time, request plumbing
    left out, as ``seconds  ncalls  file:line(function)``."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.replace(str(ROOT) + os.sep, "").replace(sys.prefix + os.sep, "")
        short = re.sub(r".*site-packages/", "", short)
        where = f"{short}:{line}({name})" if line else f"{short}({name})"
        if not _WRAPPERS.search(where):
            rows.append((cumtime, tottime, ncalls, where))
    by_cumulative = sorted(rows, key=lambda r: -r[0])[:limit]
    by_own = sorted(rows, key=lambda r: -r[1])[:limit]
    return {"cumulative": [f"{c:8.3f} s  {n:>9}  {w}" for c, _t, n, w in by_cumulative],
            "own": [f"{t:8.3f} s  {n:>9}  {w}" for _c, t, n, w in by_own]}


def _child_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _child_env() -> dict[str, str]:
    env = {**os.environ, "FUNDATLAS_AUTO_DEMO": "0", "PYTHONPATH": str(ROOT)}
    env.setdefault("FUNDATLAS_SECRET_KEY", "benchmark-only-secret")
    return env


def _run_child(args: list[str], timeout: float = 3600) -> dict:
    """Run ``run.py --child-... args`` and return the JSON object its last stdout line holds."""
    done = subprocess.run(_child_command(*args), cwd=ROOT, env=_child_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child {args[:2]} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


# --- children: one load, one parse kernel ----------------------------------------------------


def child_load(path: str, database_url: str, profile_path: str | None, read_ahead: str) -> dict:
    """Load ``path`` into the store (this process does nothing else), with memory samples.

    With read-ahead the loader's parse runs in a child of this process: its CPU time is counted,
    and its peak RSS is added to this one's (the two run at once)."""
    from data_sources.loading import load_file
    from data_sources.store import open_store

    engine = open_store(database_url)
    base = _proc_status_mib("VmRSS")
    samples: list[tuple[int, float]] = []
    seen = [0]

    def progress(records: int) -> None:
        seen[0] += records
        samples.append((seen[0], round(_proc_status_mib("VmRSS"), 1)))

    profiler = cProfile.Profile() if profile_path else None
    cpu0, started = _cpu_seconds() + _children_cpu_seconds(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = load_file(engine, path, progress=progress, read_ahead_setting=read_ahead)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_path)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() + _children_cpu_seconds() - cpu0
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    keep = samples if len(samples) <= 12 else [samples[round(i * (len(samples) - 1) / 11)] for i in range(12)]
    return {
        "format": result.format, "status": result.status, "records_read": result.records_read,
        "rows_stored": result.rows_stored, "records_rejected": result.records_rejected,
        "seconds": seconds, "cpu_seconds": cpu, "rss_base_mib": base, "rss_peak_mib": _max_rss_mib() + child_peak,
        "read_ahead_child_peak_mib": child_peak or None,
        "rss_samples": keep, "top_cumulative": _top_functions(profiler, 15) if profiler else None,
    }


def child_store_floor(path: str, scratch: str) -> dict:
    """The store's write alone: the file's canonical rows, built and validated first (not timed), then
    inserted into an empty SQLite store of the same schema as a load inserts them (chunks, one
    transaction, the commit). No loader that writes after it parses can beat this rate."""
    from data_sources import registry, schema
    from data_sources.enrich import canonical_values
    from data_sources.errors import Rejection
    from data_sources.loading import CHUNK_RECORDS
    from data_sources.store import insert_allocation_rows, open_store

    file = Path(path)
    loader = registry.detect_format(file, "auto")
    chunks, chunk = [], []
    for item in loader.read(file):
        if isinstance(item, Rejection):
            continue
        chunk.extend(canonical_values(item, str(file.resolve()), 1))
        if len(chunk) >= CHUNK_RECORDS:
            chunks.append(schema.plain_rows(chunk))
            chunk = []
    if chunk:
        chunks.append(schema.plain_rows(chunk))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    engine = open_store(f"sqlite:///{scratch}")
    started = time.perf_counter()
    with engine.begin() as conn:
        for rows in chunks:
            insert_allocation_rows(conn, rows)
    seconds = time.perf_counter() - started
    engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    return {"rows": sum(map(len, chunks)), "seconds": seconds}


def child_kernel(kind: str, path: str) -> dict:
    """The raw parse of ``path``: what any reader of the format must at least do (imports not timed)."""
    if kind == "iati":
        from lxml import etree
    elif kind == "hdx_3w":
        import pandas as pd
        from pyarrow import csv as pacsv

    started, cpu0 = time.perf_counter(), _cpu_seconds()
    extra: dict = {}
    if kind == "iati":
        counted = 0
        context = etree.iterparse(path, events=("end",), tag="iati-activity", resolve_entities=False,
                                  no_network=True, load_dtd=False)
        for _event, activity in context:
            for code in activity.iterfind("transaction/transaction-type"):
                if code.get("code") in ("2", "3", "4", "12"):
                    counted += 1
            activity.clear(keep_tail=False)
            while activity.getprevious() is not None:
                del activity.getparent()[0]
        extra["transactions_counted"] = counted
        name = "lxml.etree.iterparse"
    elif kind == "360giving":
        with open(path, "rb") as fh:
            package = json.load(fh)
        extra["grants"] = len(package["grants"])
        name = "json.load"
    elif kind == "hdx_3w":
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(skip_rows_after_names=1))
        extra["csv_rows"] = table.num_rows
        name = "pyarrow.csv.read_csv"
        pyarrow_seconds = time.perf_counter() - started
        again = time.perf_counter()
        frame = pd.read_csv(path, skiprows=[1], dtype=str, keep_default_na=False)
        extra["pandas_read_csv_s"] = time.perf_counter() - again
        extra["pandas_rows"] = len(frame)
        return {"kernel": name, "seconds": pyarrow_seconds, "cpu_seconds": _cpu_seconds() - cpu0,
                "rss_peak_mib": _max_rss_mib(), **extra}
    else:
        raise ValueError(kind)
    return {"kernel": name, "seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu0,
            "rss_peak_mib": _max_rss_mib(), **extra}


# --- the app worker: the real callbacks through Dash's HTTP endpoint --------------------------


class AppDriver:
    """A browser's side of the dashboard, played through Flask's test client: the control values it
    holds, the callbacks a change makes it call, and how long the server takes for each."""

    def __init__(self, app, year_bounds: tuple[int, int]):
        from layouts import ids

        self.ids = ids
        self.app = app
        self.client = app.server.test_client()
        self.bounds = year_bounds
        self.search = ""
        self.years = [year_bounds[0], year_bounds[1]]
        self.values: dict[str, list[str]] = {}
        self.resets = 0
        self.sync_key = next(k for k, v in app.callback_map.items() if f"{ids.URL}.search" in self._outputs_of(k))
        # Every callback that follows the URL's query string: the panels a filter change updates.
        self.panels = [k for k, v in app.callback_map.items()
                       if [(i["id"], i["property"]) for i in v["inputs"]] == [(ids.URL, "search")]]
        self.rows_key = next((k for k in app.callback_map if f"{ids.TABLE}.getRowsResponse" in k), None)

    @staticmethod
    def _outputs_of(key: str) -> list[str]:
        return [part.split("@")[0] for part in key.strip(".").split("...")]

    def _outputs(self, key: str):
        outputs = [{"id": p.split(".")[0], "property": p.split(".")[1]} for p in key.strip(".").split("...")]
        return outputs if len(outputs) > 1 else outputs[0]

    @staticmethod
    def name(key: str) -> str:
        """A short name for a callback: its first output."""
        return key.strip(".").split("...")[0].split("@")[0]

    def _post(self, payload: dict) -> tuple[float, bytes, dict | None]:
        """(server milliseconds, response body, parsed body) of one callback request."""
        started = time.perf_counter()
        response = self.client.post("/_dash-update-component", json=payload)
        body = response.get_data()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"HTTP {response.status_code} from {payload['output'][:60]}: {body[:300]!r}")
        data = json.loads(body) if response.status_code == 200 and body else None
        return elapsed, body, data

    def _value_for(self, input_id: str, prop: str, click: dict | None):
        ids = self.ids
        if input_id == ids.URL and prop == "search":
            return self.search
        if input_id == ids.YEARS and prop == "value":
            return list(self.years)
        if input_id == ids.RESET and prop == "n_clicks":
            return self.resets or None
        if input_id == ids.MAP and prop == "clickData":
            return click
        if prop == "value":
            return list(self.values.get(input_id, []))
        return None

    def sync(self, action: dict) -> tuple[float, bytes]:
        """The filter-sync callback for one user action; updates the held state from its response."""
        ids = self.ids
        kind = action["action"]
        click = None
        if kind == "url":
            self.search = action["search"]
            changed = f"{ids.URL}.search"
        elif kind == "set":
            self.values[action["control"]] = list(action["value"])
            changed = f"{action['control']}.value"
        elif kind == "years":
            self.years = list(action["value"])
            changed = f"{ids.YEARS}.value"
        elif kind == "click":
            click = {"points": [{"location": action["iso3"], "z": 1}]}
            changed = f"{ids.MAP}.clickData"
        elif kind == "reset":
            self.resets += 1
            changed = f"{ids.RESET}.n_clicks"
        else:
            raise ValueError(kind)
        spec = self.app.callback_map[self.sync_key]
        inputs = []
        for item in spec["inputs"]:
            if str(item["id"]).startswith("{"):  # a pattern-matching input: no such component on the page
                inputs.append([])
            else:
                inputs.append({"id": item["id"], "property": item["property"],
                               "value": self._value_for(item["id"], item["property"], click)})
        state = []
        for item in spec.get("state", []):
            value = {"min": self.bounds[0], "max": self.bounds[1]}.get(item["property"]) \
                if item["id"] == ids.YEARS else None
            state.append({"id": item["id"], "property": item["property"], "value": value})
        payload = {"output": self.sync_key, "outputs": self._outputs(self.sync_key), "inputs": inputs,
                   "state": state, "changedPropIds": [changed]}
        elapsed, body, data = self._post(payload)
        response = (data or {}).get("response", {})
        if ids.URL in response and "search" in response[ids.URL]:
            self.search = response[ids.URL]["search"] or ""
        if ids.YEARS in response and "value" in response[ids.YEARS]:
            self.years = list(response[ids.YEARS]["value"])
        for component, props in response.items():
            if "value" in props and component != ids.YEARS and isinstance(props["value"], list):
                self.values[component] = list(props["value"])
        return elapsed, body

    def panel(self, key: str) -> tuple[float, bytes, dict | None]:
        from layouts import ids

        payload = {"output": key, "outputs": self._outputs(key), "changedPropIds": [f"{ids.URL}.search"],
                   "inputs": [{"id": ids.URL, "property": "search", "value": self.search}],
                   "state": [{"id": s["id"], "property": s["property"], "value": None}
                             for s in self.app.callback_map[key].get("state", [])]}
        return self._post(payload)

    def first_page(self) -> tuple[float, bytes, dict | None]:
        ids = self.ids
        request = {"startRow": 0, "endRow": PAGE_ROWS, "sortModel": [], "filterModel": {}}
        payload = {"output": self.rows_key, "outputs": self._outputs(self.rows_key),
                   "changedPropIds": [f"{ids.TABLE}.getRowsRequest"],
                   "inputs": [{"id": ids.TABLE, "property": "getRowsRequest", "value": request}],
                   "state": [{"id": ids.URL, "property": "search", "value": self.search}]}
        return self._post(payload)

    def step(self, action: dict) -> dict:
        """One filter change, server side: sync, every URL-following panel, the table's first page."""
        ids = self.ids
        timings: dict[str, float] = {}
        sizes: dict[str, int] = {}
        gzipped: dict[str, int] = {}
        timings["sync"], body = self.sync(action)
        sizes["sync"] = len(body)
        count_text = None
        for key in self.panels:
            name = self.name(key)
            timings[name], body, data = self.panel(key)
            sizes[name] = len(body)
            if name == f"{ids.MAP}.figure":
                gzipped["map"] = len(gzip.compress(body, 6))
            table_count = ((data or {}).get("response", {}).get(ids.TABLE_COUNT) or {}).get("children")
            if isinstance(table_count, str):
                count_text = table_count
        page_rows = None
        if self.rows_key:
            timings["rows"], body, data = self.first_page()
            sizes["rows"] = len(body)
            gzipped["rows"] = len(gzip.compress(body, 6))
            response = ((data or {}).get("response", {}).get(ids.TABLE) or {}).get("getRowsResponse") or {}
            page_rows = len(response.get("rowData") or [])
        match = re.match(r"([\d,]+)", count_text or "")
        return {"search": self.search, "ms": timings, "bytes": sizes, "gzip_bytes": gzipped,
                "total_ms": sum(timings.values()),
                "table_count": int(match[1].replace(",", "")) if match else None, "page_rows": page_rows}


def child_columnar(database_url: str) -> dict:
    """Bring the columnar copy up to date, as ``fundatlas load`` does after its loads."""
    from data_sources import columnar
    from data_sources.store import open_store

    engine = open_store(database_url)
    started = time.perf_counter()
    table = columnar.ensure(engine)
    # The build itself runs in a child of this process (see columnar.ensure): its time is here, its
    # memory is its own and leaves with it.
    return {"seconds": time.perf_counter() - started, "rows": table.rows,
            "disk_mib": sum(f.stat().st_size for f in columnar.folder_for(engine, table.version).iterdir()) / 2**20}


def child_app(database_url: str) -> None:
    """The app worker: start-up, then filter changes read from stdin, one JSON answer per line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the app prints must not mix with the answers

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    started = time.perf_counter()
    from app import create_app
    from data_sources import queries
    from data_sources.store import open_store

    imported = time.perf_counter()
    app = create_app(database_url, auto_demo=False)
    created = time.perf_counter()
    client = app.server.test_client()
    index = client.get("/")
    layout = client.get("/_dash-layout")
    dependencies = client.get("/_dash-dependencies")
    # Serving starts at once (from SQL); the columnar copy opens (or is built) in the background.
    # Start-up counts until it is ready, as filter changes are measured on it.
    columnar_ready = app.server.extensions["fundatlas"].wait_for_columnar()
    ready = time.perf_counter()
    if layout.status_code != 200 or index.status_code != 200:
        raise RuntimeError(f"the app did not serve its page: HTTP {index.status_code} / {layout.status_code}")
    bounds = queries.year_bounds(open_store(database_url)) or (2000, 2025)
    driver = AppDriver(app, bounds)
    send({"ready": True, "import_s": imported - started, "create_app_s": created - imported,
          "columnar_ready": columnar_ready,
          "first_layout_s": ready - created, "layout_bytes": len(layout.get_data()),
          "index_bytes": len(index.get_data()), "dependencies_bytes": len(dependencies.get_data()),
          "panels": [driver.name(k) for k in driver.panels], "year_bounds": list(bounds),
          "rss_mib": _proc_status_mib("VmRSS")})
    for line in sys.stdin:
        message = json.loads(line)
        op = message.get("op")
        try:
            if op == "step":
                send(driver.step(message["action"]))
            elif op == "profile":
                send(_profile_callback(database_url, message))
            elif op == "memory":
                send({"rss_mib": _proc_status_mib("VmRSS"), "hwm_mib": _proc_status_mib("VmHWM")})
            elif op == "quit":
                break
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which records it
            send({"error": f"{type(exc).__name__}: {exc}"})


def _profile_callback(database_url: str, message: dict) -> dict:
    """One callback of one filter state under cProfile, in a fresh app (an empty cache)."""
    from app import create_app

    app = create_app(database_url, auto_demo=False)
    driver = AppDriver(app, tuple(message["bounds"]))
    driver.search = message["search"]
    profiler = cProfile.Profile()
    name = message["callback"]
    profiler.enable()
    if name == "rows":
        elapsed, _body, _data = driver.first_page()
    elif name == "sync":
        elapsed, _body = driver.sync({"action": "url", "search": message["search"]})
    else:
        key = next(k for k in driver.panels if driver.name(k) == name)
        elapsed, _body, _data = driver.panel(key)
    profiler.disable()
    if message.get("path"):
        profiler.dump_stats(message["path"])
    return {"callback": name, "search": message["search"], "ms": elapsed,
            "top_cumulative": _top_functions(profiler, 15)}


class AppWorker:
    """The parent's handle on the app worker process."""

    def __init__(self, database_url: str, log_path: Path):
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in close()
        started = time.perf_counter()
        self.process = subprocess.Popen(_child_command("--child-app", database_url), cwd=ROOT, env=_child_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.hello = self._read()
        self.startup_s = time.perf_counter() - started

    def _read(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.log.flush()
            raise RuntimeError("the app worker stopped; its log: " + Path(self.log.name).read_text()[-3000:])
        return json.loads(line)

    def ask(self, message: dict) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# --- the bare kernel: the same aggregates over an in-memory copy ------------------------------


KERNEL_COLUMNS = ("row_id", "source", "record_id", "funder_id", "funder_name", "recipient_id", "recipient_name",
                  "implementer_name", "title", "description", "flow_type", "sector_code", "sector_name", "theme",
                  "amount", "currency", "amount_usd", "year", "country_iso3", "country_name", "region",
                  "admin1_pcode", "geo_level", "duplicate_of")


def grid_columns() -> list[str]:
    from layouts.table import TABLE_COLUMNS

    return [c[0] for c in TABLE_COLUMNS]


def read_table(database_url: str):
    """The columns the views use, as a pandas DataFrame."""
    import pandas as pd
    from sqlalchemy import create_engine

    columns = list(dict.fromkeys([*KERNEL_COLUMNS, *grid_columns()]))
    query = f"SELECT {', '.join(columns)} FROM allocations"  # noqa: S608 - fixed column names
    if database_url.startswith("sqlite:///"):
        import sqlite3

        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return pd.read_sql_query(query, connection)
        finally:
            connection.close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(query, conn)
    finally:
        engine.dispose()


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class DuckKernel:
    """The views' aggregates in DuckDB, one thread, from scratch for every filter state (no cache)."""

    name = "duckdb"

    def __init__(self, frame, threads: int = 1):
        import duckdb

        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.register("frame", frame)
        self.con.execute("CREATE TABLE a AS SELECT * FROM frame")
        self.con.unregister("frame")
        self.page_columns = ", ".join(grid_columns())

    @staticmethod
    def where(f) -> tuple[str, list]:
        clauses, params = ["TRUE"], []
        for attr, column in (("countries", "country_iso3"), ("admin1", "admin1_pcode"), ("themes", "theme"),
                             ("sectors", "sector_code"), ("sources", "source"), ("flow_types", "flow_type")):
            values = list(getattr(f, attr))
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params += values
        for attr, (id_col, name_col) in (("funders", ("funder_id", "funder_name")),
                                         ("recipients", ("recipient_id", "recipient_name"))):
            values = list(getattr(f, attr))
            if values:
                marks = ", ".join("?" * len(values))
                clauses.append(f"({id_col} IN ({marks}) OR {name_col} IN ({marks}))")
                params += values + values
        if f.year_from is not None:
            clauses.append("year >= ?")
            params.append(f.year_from)
        if f.year_to is not None:
            clauses.append("year <= ?")
            params.append(f.year_to)
        if f.min_usd is not None:
            clauses.append("amount_usd >= ?")
            params.append(f.min_usd)
        if f.q:
            cols = ("title", "description", "funder_name", "recipient_name", "implementer_name")
            clauses.append("(" + " OR ".join(f"{c} ILIKE ? ESCAPE '\\'" for c in cols) + ")")
            params += [_like(f.q)] * len(cols)
        return " AND ".join(clauses), params

    def _q(self, sql: str, params: list):
        return self.con.execute(sql, params).fetchall()

    def country_totals(self, f):
        where, params = self.where(f)
        return self._q(
            "SELECT country_iso3, max(country_name), coalesce(sum(amount_usd), 0), "
            "count(DISTINCT source || ':' || record_id), count(DISTINCT coalesce(funder_id, funder_name)), "
            "count(DISTINCT coalesce(recipient_id, recipient_name)) FROM a "
            f"WHERE {where} AND duplicate_of IS NULL AND country_iso3 IS NOT NULL GROUP BY 1 ORDER BY 1", params)

    def headline(self, f):
        where, params = self.where(f)
        row = self._q(
            "SELECT coalesce(sum(amount_usd), 0), count(DISTINCT source || ':' || record_id), "
            "count(DISTINCT coalesce(funder_id, funder_name)), count(DISTINCT coalesce(recipient_id, recipient_name)), "
            "count(*), coalesce(sum(CASE WHEN country_iso3 IS NULL THEN amount_usd ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN amount IS NOT NULL AND amount_usd IS NULL THEN 1 ELSE 0 END), 0) "
            f"FROM a WHERE {where} AND duplicate_of IS NULL", params)[0]
        flows = self._q(f"SELECT flow_type, coalesce(sum(amount_usd), 0) FROM a WHERE {where} AND duplicate_of IS NULL "
                        "GROUP BY 1", params)
        return row, flows

    def count(self, f) -> int:
        where, params = self.where(f)
        return int(self._q(f"SELECT count(*) FROM a WHERE {where}", params)[0][0])

    def page(self, f):
        where, params = self.where(f)
        return self._q(f"SELECT {self.page_columns} FROM a WHERE {where} ORDER BY row_id LIMIT {PAGE_ROWS}", params)

    def breakdown(self, f, dimension: str, limit: int = 10):
        where, params = self.where(f)
        base = f"FROM a WHERE {where} AND duplicate_of IS NULL"
        records = "count(DISTINCT source || ':' || record_id)"
        if dimension == "year":
            return self._q(f"SELECT year, sum(amount_usd), {records} {base} AND year IS NOT NULL GROUP BY 1 ORDER BY 1",
                           params)
        if dimension == "theme":
            return self._q(f"SELECT coalesce(theme, '(no theme)') AS t, coalesce(sum(amount_usd), 0) AS usd, {records} "
                           f"{base} GROUP BY 1 ORDER BY usd DESC, t LIMIT {limit}", params)
        name, ident = ("funder_name", "funder_id") if dimension == "funder" else ("recipient_name", "recipient_id")
        return self._q(f"SELECT coalesce({ident}, {name}) AS v, max({name}), coalesce(sum(amount_usd), 0) AS usd, "
                       f"{records} {base} AND coalesce({ident}, {name}) IS NOT NULL GROUP BY 1 "
                       f"ORDER BY usd DESC, v LIMIT {limit}", params)

    def top_values(self, column: str, where: str = "TRUE", limit: int = 5) -> list[str]:
        rows = self._q(f"SELECT {column} AS v FROM a WHERE {where} AND {column} IS NOT NULL GROUP BY 1 "
                       f"ORDER BY sum(amount_usd) DESC NULLS LAST, v LIMIT {limit}", [])
        return [str(r[0]) for r in rows]


class PandasKernel:
    """The same aggregates in pandas, for when DuckDB is not installed."""

    name = "pandas"

    def __init__(self, frame, threads: int = 1):
        self.a = frame
        self.a["record_key"] = frame["source"] + ":" + frame["record_id"]
        self.a["funder_key"] = frame["funder_id"].fillna(frame["funder_name"])
        self.a["recipient_key"] = frame["recipient_id"].fillna(frame["recipient_name"])
        self.a["theme_key"] = frame["theme"].fillna("(no theme)")
        self.page_columns = grid_columns()

    def mask(self, f):
        a = self.a
        keep = None

        def both(m):
            return m if keep is None else keep & m

        for attr, column in (("countries", "country_iso3"), ("admin1", "admin1_pcode"), ("themes", "theme"),
                             ("sectors", "sector_code"), ("sources", "source"), ("flow_types", "flow_type")):
            if getattr(f, attr):
                keep = both(a[column].isin(getattr(f, attr)))
        for attr, (id_col, name_col) in (("funders", ("funder_id", "funder_name")),
                                         ("recipients", ("recipient_id", "recipient_name"))):
            if getattr(f, attr):
                values = list(getattr(f, attr))
                keep = both(a[id_col].isin(values) | a[name_col].isin(values))
        if f.year_from is not None:
            keep = both(a["year"] >= f.year_from)
        if f.year_to is not None:
            keep = both(a["year"] <= f.year_to)
        if f.min_usd is not None:
            keep = both(a["amount_usd"] >= f.min_usd)
        if f.q:
            needle = f.q.lower()
            found = None
            for col in ("title", "description", "funder_name", "recipient_name", "implementer_name"):
                hit = a[col].str.lower().str.contains(needle, regex=False, na=False)
                found = hit if found is None else found | hit
            keep = both(found)
        return keep

    def _rows(self, f, counted: bool):
        m = self.mask(f)
        rows = self.a if m is None else self.a[m]
        return rows[rows["duplicate_of"].isna()] if counted else rows

    def country_totals(self, f):
        rows = self._rows(f, True)
        rows = rows[rows["country_iso3"].notna()]
        grouped = rows.groupby("country_iso3")
        return grouped.agg(name=("country_name", "max"), usd=("amount_usd", "sum"), records=("record_key", "nunique"),
                           funders=("funder_key", "nunique"), recipients=("recipient_key", "nunique"))

    def headline(self, f):
        rows = self._rows(f, True)
        row = (rows["amount_usd"].sum(), rows["record_key"].nunique(), rows["funder_key"].nunique(),
               rows["recipient_key"].nunique(), len(rows), rows.loc[rows["country_iso3"].isna(), "amount_usd"].sum(),
               int((rows["amount"].notna() & rows["amount_usd"].isna()).sum()))
        return row, rows.groupby("flow_type")["amount_usd"].sum()

    def count(self, f) -> int:
        m = self.mask(f)
        return len(self.a) if m is None else int(m.sum())

    def page(self, f):
        return self._rows(f, False).sort_values("row_id").head(PAGE_ROWS)[self.page_columns]

    def breakdown(self, f, dimension: str, limit: int = 10):
        rows = self._rows(f, True)
        key = {"year": "year", "theme": "theme_key", "funder": "funder_key", "recipient": "recipient_key"}[dimension]
        totals = rows.groupby(key).agg(usd=("amount_usd", "sum"), records=("record_key", "nunique"))
        return totals if dimension == "year" else totals.sort_values("usd", ascending=False).head(limit)

    def top_values(self, column: str, where: str = "TRUE", limit: int = 5) -> list[str]:
        rows = self.a
        match = re.fullmatch(r"source = '(\w+)'", where)
        if match:
            rows = rows[rows["source"] == match[1]]
        totals = rows[rows[column].notna()].groupby(column)["amount_usd"].sum().sort_values(ascending=False)
        return [str(v) for v in totals.index[:limit]]


def make_kernel(frame, threads: int = 1):
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return PandasKernel(frame, threads)
    return DuckKernel(frame, threads)


def kernel_change(kernel, filters, charts: bool) -> tuple[float, dict]:
    """Everything the views of one filter state need, from scratch: total ms and the results."""
    from data_sources.filters import Filters

    started = time.perf_counter()
    map_filters = Filters(**{**{k: getattr(filters, k) for k in filters.__dataclass_fields__}, "countries": ()})
    results = {"country_totals": kernel.country_totals(map_filters), "headline": kernel.headline(filters)}
    if filters.countries:
        results["map_headline"] = kernel.headline(map_filters)  # the map's note uses the map's filters
    results["count"] = kernel.count(filters)
    results["page"] = kernel.page(filters)
    if charts:
        for dimension in ("year", "funder", "recipient", "theme"):
            results[f"by_{dimension}"] = kernel.breakdown(filters, dimension)
    return (time.perf_counter() - started) * 1000, results


# --- the script of filter changes -------------------------------------------------------------


def filter_script(kernel, bounds: tuple[int, int]) -> list[dict]:
    """About 30 filter changes, as a user makes them, with values from the data (the biggest ones)."""
    from layouts import ids

    low, high = bounds
    countries = kernel.top_values("country_iso3", limit=5) or ["KEN"]
    countries += [countries[-1]] * (5 - len(countries))
    iati_funder = (kernel.top_values("coalesce(funder_id, funder_name)", "source = 'iati'", 1) or ["x"])[0]
    giving_funder = (kernel.top_values("coalesce(funder_id, funder_name)", "source = '360giving'", 1) or ["x"])[0]
    recipient = (kernel.top_values("coalesce(recipient_id, recipient_name)", limit=1) or ["x"])[0]
    sector = (kernel.top_values("sector_code", limit=1) or ["14030"])[0]
    mid = max(low, min(high, 2015))

    def years(a: int, b: int) -> dict:
        a, b = max(low, min(high, a)), max(low, min(high, b))
        return {"action": "years", "value": [min(a, b), max(a, b)]}

    def set_(control: str, *values: str) -> dict:
        return {"action": "set", "control": control, "value": list(values)}

    reset = {"action": "reset"}
    return [
        {"action": "url", "search": ""},  # the page opens
        set_(ids.THEME, "WASH"),
        set_(ids.THEME, "WASH", "Health"),
        years(mid, mid + 5),
        {"action": "click", "iso3": countries[0]},
        {"action": "click", "iso3": countries[0]},  # clicking it again clears it
        set_(ids.FUNDER, iati_funder),
        set_(ids.SOURCE, "iati"),
        set_(ids.FLOW_TYPE, "disbursement"),
        set_(ids.FLOW_TYPE, "disbursement", "commitment"),
        reset,
        set_(ids.COUNTRY, countries[1]),
        set_(ids.COUNTRY, countries[1], countries[2]),
        set_(ids.SECTOR, sector),
        set_(ids.RECIPIENT, recipient),
        reset,
        {"action": "url", "search": "?q=water"},
        {"action": "url", "search": "?q=health&theme=Health"},
        years(high - 5, high),
        set_(ids.SOURCE, "360giving"),
        set_(ids.FUNDER, giving_funder),
        reset,
        years(low, low + 4),
        set_(ids.THEME, "Humanitarian"),
        {"action": "click", "iso3": countries[3]},
        set_(ids.FLOW_TYPE, "commitment"),
        reset,
        set_(ids.SOURCE, "hdx_3w"),
        set_(ids.THEME, "Education", "Health", "WASH"),
        {"action": "url", "search": f"?country={countries[4]}&year-from={mid - 3}&year-to={mid + 3}"},
        reset,
    ]


def describe(action: dict) -> str:
    kind = action["action"]
    if kind == "set":
        return f"{action['control'].removeprefix('filters-')}={','.join(action['value'])}"
    if kind == "years":
        return f"years={action['value'][0]}-{action['value'][1]}"
    if kind == "click":
        return f"click {action['iso3']}"
    if kind == "url":
        return f"url {action['search'] or '(none)'}"
    return kind


# --- the stages --------------------------------------------------------------------------------


def prepare_data(out_dir: Path, rows: int, seed: int, keep: bool) -> tuple[dict, float | None]:
    """The generated files (reused with ``keep`` when the manifest matches); (manifest, seconds or None)."""
    manifest_path = out_dir / gen.MANIFEST_FILE
    if keep and manifest_path.exists():
        manifest = gen.read_manifest(out_dir)
        if (manifest.get("rows_requested"), manifest.get("seed")) == (rows, seed) and all(
                (out_dir / info["file"]).exists() for info in manifest["files"].values()):
            return manifest, None
    started = time.perf_counter()
    gen.generate(out_dir, rows, seed)
    return gen.read_manifest(out_dir), time.perf_counter() - started


def measure_loads(data_dir: Path, manifest: dict, database_url: str, profile_dir: Path | None,
                  read_ahead: str = READ_AHEAD, floor: bool = True) -> dict:
    """Each file: its parse kernel, then its load, then the store's write floor, each in a fresh process."""
    figures = {}
    for source in FORMATS:
        info = manifest["files"][source]
        path = str(data_dir / info["file"])
        kernel = _run_child(["--child-kernel", source, path])
        args = ["--child-load", path, database_url, "--read-ahead", read_ahead]
        if profile_dir is not None:
            args += ["--profile", str(profile_dir / f"load-{source}.prof")]
        load = _run_child(args)
        write = _run_child(["--child-store-floor", path, str(data_dir / "floor.sqlite")]) if floor else None
        rows = info["rows"]
        measured = load["status"] == "succeeded"
        load_rate = load["rows_stored"] / load["seconds"] if measured and load["seconds"] > 0 else None
        kernel_rate = rows / kernel["seconds"] if kernel["seconds"] > 0 else None
        figures[source] = {
            "file_mb": info["bytes"] / 1e6, "rows_expected": rows, "records_expected": info["records"],
            "status": load["status"], "rows_stored": load["rows_stored"], "records_read": load["records_read"],
            "records_rejected": load["records_rejected"], "load_s": load["seconds"], "load_cpu_s": load["cpu_seconds"],
            "load_rows_per_s": load_rate,
            "load_rows_per_cpu_s": load["rows_stored"] / load["cpu_seconds"] if measured else None,
            "load_peak_rss_mib": load["rss_peak_mib"], "load_base_rss_mib": load["rss_base_mib"],
            "load_rss_samples": load["rss_samples"],
            "load_rss_growth_during_mib": (load["rss_samples"][-1][1] - load["rss_samples"][0][1])
            if load["rss_samples"] else None,
            "kernel": kernel["kernel"], "kernel_s": kernel["seconds"], "kernel_rows_per_s": kernel_rate,
            "kernel_peak_rss_mib": kernel["rss_peak_mib"],
            "ratio": load_rate / kernel_rate if load_rate and kernel_rate else None,
            "read_ahead": read_ahead, "read_ahead_child_peak_mib": load.get("read_ahead_child_peak_mib"),
            "top_cumulative": load.get("top_cumulative"),
        }
        if write is not None and write["seconds"] > 0:
            write_rate = write["rows"] / write["seconds"]
            figures[source].update(store_write_s=write["seconds"], store_write_rows_per_s=write_rate,
                                   store_write_ratio=write_rate / kernel_rate if kernel_rate else None)
        if "pandas_read_csv_s" in kernel:
            figures[source]["pandas_read_csv_s"] = kernel["pandas_read_csv_s"]
            # An extra figure, not a budget: the load against pandas' read_csv of the same file.
            pandas_rate = rows / kernel["pandas_read_csv_s"] if kernel["pandas_read_csv_s"] > 0 else None
            figures[source]["ratio_vs_pandas_read_csv"] = load_rate / pandas_rate if load_rate and pandas_rate else None
        cpu_rate = figures[source]["load_rows_per_cpu_s"] or 0
        print(f"load {source:10s} {info['bytes'] / 1e6:8.1f} MB  {load['rows_stored']:>9,} rows in "
              f"{load['seconds']:7.1f} s = {load_rate or 0:>9,.0f} rows/s (cpu {cpu_rate:,.0f}/s), "
              f"peak RSS {load['rss_peak_mib']:.0f} MiB | kernel {kernel['kernel']} {kernel['seconds']:.2f} s = "
              f"{kernel_rate or 0:,.0f} rows/s, peak {kernel['rss_peak_mib']:.0f} MiB | ratio "
              f"{figures[source]['ratio'] or 0:.3f}"
              + (f" (vs pandas read_csv {figures[source]['ratio_vs_pandas_read_csv']:.3f})"
                 if figures[source].get("ratio_vs_pandas_read_csv") else ""), flush=True)
        if figures[source].get("store_write_rows_per_s"):
            print(f"  store write alone {source:10s} {figures[source]['store_write_s']:.2f} s = "
                  f"{figures[source]['store_write_rows_per_s']:,.0f} rows/s = "
                  f"{figures[source]['store_write_ratio']:.3f} of the kernel (the most a load that writes "
                  f"after it parses could reach)", flush=True)
    return figures


def measure_probe(work: Path, rows: int, seed: int, loads: dict) -> None:
    """The same loads at a tenth of the rows into a scratch store: is peak memory flat in file size?"""
    probe_rows = max(3, rows // PROBE_FRACTION)
    probe_dir = work / "probe"
    gen.generate(probe_dir, probe_rows, seed)
    manifest = gen.read_manifest(probe_dir)
    store = probe_dir / "probe.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    from data_sources.loading import CHUNK_RECORDS

    for source in FORMATS:
        info = manifest["files"][source]
        probe = _run_child(["--child-load", str(probe_dir / info["file"]), f"sqlite:///{store}",
                            "--read-ahead", loads[source]["read_ahead"]])
        figures = loads[source]
        slack = max(MEMORY_FLAT_SLACK_MIB, MEMORY_FLAT_SLACK_FRACTION * probe["rss_peak_mib"])
        growth = figures["load_peak_rss_mib"] - probe["rss_peak_mib"]
        extra_rows = figures["rows_stored"] - probe["rows_stored"]
        # A load works in chunks of CHUNK_RECORDS records: a probe of less than two chunks has not reached
        # its steady state, so it cannot tell flat from growing.
        judged = probe["records_read"] >= 2 * CHUNK_RECORDS
        figures.update(
            probe_rows=probe["rows_stored"], probe_records=probe["records_read"], probe_file_mb=info["bytes"] / 1e6,
            probe_peak_rss_mib=probe["rss_peak_mib"],
            peak_rss_growth_mib=growth,
            mib_per_100k_rows=growth / extra_rows * 1e5 if extra_rows > 0 else None,
            memory_flat=(growth <= slack) if judged else None,
        )
        verdict = {True: "flat", False: "grows with the file", None: "probe under two chunks: not judged"}
        print(f"memory {source:10s} peak {figures['load_peak_rss_mib']:.0f} MiB at {figures['rows_stored']:,} rows vs "
              f"{probe['rss_peak_mib']:.0f} MiB at {probe['rows_stored']:,} rows: +{growth:.0f} MiB "
              f"({verdict[figures['memory_flat']]})", flush=True)
    shutil.rmtree(probe_dir, ignore_errors=True)


def measure_callbacks(database_url: str, work: Path, kernel_threads: int, steps: int | None,
                      profile_dir: Path | None) -> dict:
    from data_sources.filters import Filters

    started = time.perf_counter()
    frame = read_table(database_url)
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    kernel = make_kernel(frame, kernel_threads)
    del frame
    kernel_load_s = time.perf_counter() - started
    print(f"kernel: {kernel.name}, {kernel_threads} thread(s); table copied in {copy_s:.1f} s, "
          f"loaded in {kernel_load_s:.1f} s", flush=True)

    copy = _run_child(["--child-columnar", database_url])
    print(f"columnar copy: {copy['rows']:,} rows ready in {copy['seconds']:.1f} s (built or opened, as after a "
          f"load), {copy['disk_mib']:.0f} MiB on disk", flush=True)
    worker = AppWorker(database_url, work / "app-worker.log")
    try:
        hello = worker.hello
        print(f"start-up: {worker.startup_s:.2f} s to the first layout (imports {hello['import_s']:.2f} s, "
              f"create_app {hello['create_app_s']:.2f} s, first page and layout {hello['first_layout_s']:.2f} s); "
              f"layout {hello['layout_bytes']:,} bytes", flush=True)
        panels = hello["panels"]
        charts = any(p.startswith("charts-") for p in panels)
        script = filter_script(kernel, tuple(hello["year_bounds"]))
        if steps is not None:
            script = script[:steps]
        results = []
        errors = []
        for n, action in enumerate(script):
            answer = worker.ask({"op": "step", "action": action})
            if "error" in answer:
                errors.append(f"{describe(action)}: {answer['error']}")
                print(f"  step {n + 1:2d} {describe(action):40s} ERROR {answer['error']}", flush=True)
                continue
            filters = Filters.from_query_string(answer["search"])
            kernel_ms, kernel_results = kernel_change(kernel, filters, charts)
            answer.update(action=describe(action), kernel_ms=kernel_ms, kernel_count=kernel_results["count"],
                          consistent=answer["table_count"] in (None, kernel_results["count"]))
            results.append(answer)
            slowest = max(answer["ms"], key=answer["ms"].get)
            print(f"  step {n + 1:2d} {describe(action)[:40]:40s} app {answer['total_ms']:8.1f} ms (slowest "
                  f"{slowest} {answer['ms'][slowest]:.1f}) kernel {kernel_ms:7.1f} ms  "
                  f"x{answer['total_ms'] / kernel_ms:6.1f}"
                  f"  {answer['kernel_count']:>9,} rows  map {answer['bytes'].get('map-choropleth.figure', 0):,} B"
                  f"  page {answer['bytes'].get('rows', 0):,} B", flush=True)
        memory = worker.ask({"op": "memory"})
        profile = None
        if profile_dir is not None and results:
            slowest_step = max(results, key=lambda r: r["total_ms"])
            callback = max(slowest_step["ms"], key=slowest_step["ms"].get)
            profile = worker.ask({"op": "profile", "search": slowest_step["search"], "callback": callback,
                                  "bounds": hello["year_bounds"], "path": str(profile_dir / "slowest-callback.prof")})
    finally:
        worker.close()

    app_totals = [r["total_ms"] for r in results]
    kernel_totals = [r["kernel_ms"] for r in results]
    per_callback = {}
    for name in dict.fromkeys(k for r in results for k in r["ms"]):
        values = [r["ms"][name] for r in results if name in r["ms"]]
        per_callback[name] = {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                              "max_ms": max(values)}
    map_sizes = [r["bytes"].get("map-choropleth.figure") for r in results if "map-choropleth.figure" in r["bytes"]]
    page_sizes = [r["bytes"]["rows"] for r in results if "rows" in r["bytes"] and r.get("page_rows")]
    figures = {
        "kernel": kernel.name, "kernel_threads": kernel_threads, "table_copy_s": copy_s, "steps": len(script),
        "errors": errors, "panels": panels,
        "app_p50_ms": percentile(app_totals, 50), "app_p95_ms": percentile(app_totals, 95),
        "app_max_ms": max(app_totals, default=math.nan),
        "kernel_p50_ms": percentile(kernel_totals, 50), "kernel_p95_ms": percentile(kernel_totals, 95),
        "overhead_p50_ratio": percentile(app_totals, 50) / percentile(kernel_totals, 50) if results else None,
        "overhead_p95_ratio": percentile(app_totals, 95) / percentile(kernel_totals, 95) if results else None,
        "per_step_ratio_p50": percentile([a / k for a, k in zip(app_totals, kernel_totals, strict=True)], 50),
        "per_callback": per_callback,
        "consistent_with_kernel": all(r["consistent"] for r in results),
        "map_update_bytes_max": max(map_sizes, default=None),
        "table_page_bytes_max": max(page_sizes, default=None),
        "columnar_copy_s": copy["seconds"], "columnar_copy_mib": copy["disk_mib"],
"columnar_ready": hello["columnar_ready"],
        "startup_s": worker.startup_s, "startup_import_s": hello["import_s"],
        "startup_create_app_s": hello["create_app_s"],
        "startup_first_layout_s": hello["first_layout_s"], "layout_bytes": hello["layout_bytes"],
        "worker_rss_mib_start": hello["rss_mib"], "worker_rss_mib": memory.get("rss_mib"),
        "worker_hwm_mib": memory.get("hwm_mib"),
        "slowest_step": max(results, key=lambda r: r["total_ms"])["action"] if results else None,
        "profile": profile,
        "steps_detail": [[r["action"], round(r["total_ms"], 1), round(r["kernel_ms"], 1), r["kernel_count"]]
                         for r in results],  # [change, app ms, kernel ms, rows]
    }
    gzipped = [r["gzip_bytes"] for r in results]
    figures["map_update_gzip_bytes_max"] = max((g["map"] for g in gzipped if "map" in g), default=None)
    figures["table_page_gzip_bytes_max"] = max((g["rows"] for g in gzipped if "rows" in g), default=None)
    return figures


def evaluate_budgets(figures: dict) -> dict:
    budgets: dict[str, dict] = {}

    def add(name: str, value, limit, ok) -> None:
        budgets[name] = {"value": _round(value, 3) if isinstance(value, float) else value, "limit": limit,
                         "pass": None if value is None else bool(ok)}

    cb = figures.get("callbacks")
    if cb:
        add("filter_change_p95_ms", cb["app_p95_ms"], f"< {BUDGETS['filter_change_p95_ms']:g}",
            cb["app_p95_ms"] < BUDGETS["filter_change_p95_ms"])
        ratio = cb["overhead_p95_ratio"]
        add("overhead_p95_ratio", ratio, f"<= {BUDGETS['overhead_p95_ratio']:g}",
            ratio is not None and ratio <= BUDGETS["overhead_p95_ratio"])
        add("map_update_bytes", cb["map_update_bytes_max"], f"< {BUDGETS['map_update_bytes']}",
            cb["map_update_bytes_max"] is not None and cb["map_update_bytes_max"] < BUDGETS["map_update_bytes"])
        add("table_page_bytes", cb["table_page_bytes_max"], f"< {BUDGETS['table_page_bytes']}",
            cb["table_page_bytes_max"] is not None and cb["table_page_bytes_max"] < BUDGETS["table_page_bytes"])
        add("startup_s", cb["startup_s"], f"< {BUDGETS['startup_s']:g}", cb["startup_s"] < BUDGETS["startup_s"])
        add("callbacks_consistent_with_kernel", cb["consistent_with_kernel"], True, cb["consistent_with_kernel"])
    for source, load in (figures.get("load") or {}).items():
        if load.get("ratio") is not None:
            add(f"load_{source}_vs_kernel", load["ratio"], f">= {BUDGETS['load_vs_kernel_ratio']:g}",
                load["ratio"] >= BUDGETS["load_vs_kernel_ratio"])
        if "memory_flat" in load:
            add(f"load_{source}_memory_flat", load["peak_rss_growth_mib"],
                f"peak growth <= max({MEMORY_FLAT_SLACK_MIB:g} MiB, 10%) from {load['probe_rows']:,} rows",
                load["memory_flat"])
            if load["memory_flat"] is None:
                budgets[f"load_{source}_memory_flat"]["pass"] = None
    if figures.get("rows_stored") is not None and figures.get("rows_expected") is not None:
        add("rows_stored_as_generated", figures["rows_stored"], figures["rows_expected"],
            figures["rows_stored"] == figures["rows_expected"])
    return budgets


def _store_rows(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM allocations")).scalar_one())
    finally:
        engine.dispose()


def _clean(value):
    """JSON-ready: NaN becomes null, floats rounded."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, 4) if abs(value) < 10 else round(value, 1)
    return value


def run_benchmark(rows: int = 100_000, seed: int = gen.DEFAULT_SEED, out_dir: Path | None = None,
                  database_url: str | None = None, keep: bool = False, skip_load: bool = False, probe: bool = True,
                  kernel_threads: int = 1, steps: int | None = None, profile_dir: Path | None = None,
                  skip_callbacks: bool = False, read_ahead: str | None = None, floor: bool = True) -> dict:
    """Every stage; returns the figures (the JSON the script prints last)."""
    work = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / f"fundatlas-bench-{rows}-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    default_store = work / "store.sqlite"
    database_url = database_url or f"sqlite:///{default_store}"
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"rows_requested": rows, "seed": seed, "database": database_url.split(":", 1)[0],
                     "cpu_count": os.cpu_count(), "load": None, "callbacks": None}
    began = time.perf_counter()
    made: list[Path] = []  # what this run wrote, and may remove at the end (never a store it only read)
    try:
        if not skip_load:
            if database_url == f"sqlite:///{default_store}":
                made += [Path(f"{default_store}{suffix}") for suffix in ("", "-wal", "-shm")]
            if not keep and database_url == f"sqlite:///{default_store}":
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{default_store}{suffix}").unlink(missing_ok=True)
            cpu0 = _cpu_seconds() + _children_cpu_seconds()
            manifest, gen_s = prepare_data(work, rows, seed, keep)
            if gen_s is not None:
                made += [work / name for name in (gen.IATI_FILE, gen.GIVING_FILE, gen.HDX_FILE, gen.MANIFEST_FILE)]
            gen_cpu = _cpu_seconds() + _children_cpu_seconds() - cpu0
            figures["generate"] = {
                "reused": gen_s is None, "seconds": gen_s, "rows": manifest["rows"], "records": manifest["records"],
                "records_per_s": manifest["records"] / gen_s if gen_s else None,
                "records_per_cpu_s": manifest["records"] / gen_cpu if gen_s and gen_cpu > 0 else None,
                "files_mb": {s: i["bytes"] / 1e6 for s, i in manifest["files"].items()},
            }
            if gen_s:
                print(f"generate: {manifest['rows']:,} rows from {manifest['records']:,} records in {gen_s:.1f} s "
                      f"({manifest['records'] / gen_s:,.0f} records/s)", flush=True)
            figures["rows_expected"] = manifest["rows"]
            read_ahead = read_ahead or ("0" if profile_dir else READ_AHEAD)
            figures["load"] = measure_loads(work, manifest, database_url, profile_dir, read_ahead,
                                            floor=floor and database_url.startswith("sqlite:"))
            if probe and database_url.startswith("sqlite:"):
                measure_probe(work, rows, seed, figures["load"])
            load_s = sum(v["load_s"] for v in figures["load"].values())
            stored = sum(v["rows_stored"] for v in figures["load"].values())
            figures["load_total"] = {"seconds": load_s, "rows_per_s": stored / load_s if load_s else None}
        figures["rows_stored"] = _store_rows(database_url)
        print(f"store: {figures['rows_stored']:,} rows ({figures['database']})", flush=True)
        if figures["rows_stored"] == 0:
            raise RuntimeError(f"the store {database_url} is empty: run without --skip-load first")
        if not skip_callbacks:
            made.append(work / "app-worker.log")
            figures["callbacks"] = measure_callbacks(database_url, work, kernel_threads, steps, profile_dir)
    finally:
        shutil.rmtree(work / "probe", ignore_errors=True)
        if not keep:
            for path in made:
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                work.rmdir()  # only when empty: never someone else's files
    figures["seconds"] = time.perf_counter() - began
    figures["budgets"] = evaluate_budgets(figures)
    return _clean(figures)


def _print_top(top: dict[str, list[str]]) -> None:
    for kind, title in (("cumulative", "by cumulative time"), ("own", "by own time")):
        print(f"  top {len(top[kind])} {title}:")
        for line in top[kind]:
            print("   ", line)


def print_summary(figures: dict) -> None:
    cb = figures.get("callbacks") or {}
    if cb:
        print(f"filter changes ({cb['steps']}): app p50 {cb['app_p50_ms']} ms, p95 {cb['app_p95_ms']} ms | kernel "
              f"({cb['kernel']}) p50 {cb['kernel_p50_ms']} ms, p95 {cb['kernel_p95_ms']} ms | overhead p95 "
              f"x{cb['overhead_p95_ratio']}, p50 x{cb['overhead_p50_ratio']}")
        for name, values in cb["per_callback"].items():
            print(f"  {name:40s} p50 {values['p50_ms']:8.1f} ms  p95 {values['p95_ms']:8.1f} ms  max "
                  f"{values['max_ms']:8.1f} ms")
        print(f"bytes: map update {cb['map_update_bytes_max']}, table page ({PAGE_ROWS} rows) "
              f"{cb['table_page_bytes_max']}; app worker RSS {cb['worker_rss_mib']} MiB (high-water "
              f"{cb['worker_hwm_mib']} MiB)")
        if cb.get("profile"):
            profile = cb["profile"]
            print(f"profile of the slowest callback, {profile['callback']} on {profile['search'] or '(none)'}"
                  f" ({profile['ms']} ms)")
            _print_top(profile["top_cumulative"])
    for source, load in (figures.get("load") or {}).items():
        if load.get("top_cumulative"):
            print(f"profile of the {source} load ({load['rows_stored']:,} rows, {load['load_s']} s under cProfile)")
            _print_top(load["top_cumulative"])
    for name, budget in figures["budgets"].items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[budget["pass"]]
        print(f"budget {name:36s} {verdict:4s}  {budget['value']}  (limit {budget['limit']})")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-load"]:
        profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
        read_ahead = argv[argv.index("--read-ahead") + 1] if "--read-ahead" in argv else READ_AHEAD
        print(json.dumps(child_load(argv[1], argv[2], profile, read_ahead)))
        return 0
    if argv[:1] == ["--child-store-floor"]:
        print(json.dumps(child_store_floor(argv[1], argv[2])))
        return 0
    if argv[:1] == ["--child-kernel"]:
        print(json.dumps(child_kernel(argv[1], argv[2])))
        return 0
    if argv[:1] == ["--child-app"]:
        child_app(argv[1])
        return 0
    if argv[:1] == ["--child-columnar"]:
        print(json.dumps(child_columnar(argv[1])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="allocation rows to generate and load (about)")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL of the store (default: a SQLite file in --out)")
    parser.add_argument("--out", type=Path, default=None,
                        help="working folder for the files and the default store (default: the temp folder)")
    parser.add_argument("--seed", type=int, default=gen.DEFAULT_SEED)
    parser.add_argument("--keep", action="store_true", help="reuse matching generated files; keep files and store")
    parser.add_argument("--skip-load", action="store_true", help="measure the callbacks on the existing store")
    parser.add_argument("--no-probe", action="store_true", help="skip the tenth-size loads (memory flatness)")
    parser.add_argument("--skip-callbacks", action="store_true", help="measure the loads only")
    parser.add_argument("--kernel-threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="play only the first N filter changes")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write cProfile files here and print their tops (loads then read in-process)")
    parser.add_argument("--read-ahead", choices=("0", "1", "auto"), default=None,
                        help=f"every load's FUNDATLAS_READ_AHEAD (default {READ_AHEAD}: full and probe loads alike)")
    parser.add_argument("--no-floor", action="store_true", help="skip the store-write-alone measure")
    args = parser.parse_args(argv)
    read_ahead = args.read_ahead or ("0" if args.profile else READ_AHEAD)
    figures = run_benchmark(args.rows, args.seed, args.out, args.db, keep=args.keep, skip_load=args.skip_load,
                            probe=not args.no_probe, kernel_threads=args.kernel_threads, steps=args.steps,
                            profile_dir=args.profile, skip_callbacks=args.skip_callbacks,
                            read_ahead=read_ahead, floor=not args.no_floor)
    print_summary(figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
