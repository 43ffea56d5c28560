"""A bounded load test of the dashboard under gunicorn, on loopback only.

    python benchmarks/loadtest.py --db sqlite:///demo.sqlite --workers 3 --users 8 --seconds 30

Starts ``gunicorn app:server`` with several workers, then simulated users send a fixed, seeded mix of
the requests a person's filter changes cause (headline, map, table page, dropdown search, CSV export
of a small selection) for a bounded time. Prints requests/s, latency percentiles, errors and each
worker's memory before and after; the last line is one JSON object with those figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layouts import ids  # noqa: E402

FILTER_MIX = (
    "", "?theme=WASH", "?theme=Health&year-from=2018", "?country=KEN", "?country=UGA&theme=WASH",
    "?source=iati", "?source=360giving&year-to=2020", "?flow-type=commitment", "?q=water",
    "?theme=Education&country=NPL", "?year-from=2016&year-to=2019", "?min-usd=100000",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _callback_payloads(database_url: str) -> dict[str, tuple[str, list[dict]]]:
    """Output key and output list of the callbacks a filter change runs, from the app's own map."""
    from app import create_app

    app = create_app(database_url=database_url, auto_demo=False)
    wanted = {"headline": f"{ids.HEADLINE_USD}.children", "map": f"{ids.MAP}.figure",
              "table_count": f"{ids.TABLE_COUNT}.children", "rows": f"{ids.TABLE}.getRowsResponse"}
    found = {}
    for name, marker in wanted.items():
        key = next(k for k in app.callback_map if marker in k)
        outputs = [{"id": p.split(".")[0], "property": p.split(".")[1]} for p in key.strip(".").split("...")]
        found[name] = (key, outputs)
    return found


def _request(session: requests.Session, base: str, payloads, kind: str, search: str, rng: random.Random):
    if kind == "export":
        return session.get(f"{base}/export/csv{search or '?'}&country=KEN&theme=WASH", timeout=60)
    if kind == "rows":
        key, outputs = payloads["rows"]
        start = rng.choice((0, 100, 200))
        body = {"output": key, "outputs": outputs[0], "changedPropIds": [f"{ids.TABLE}.getRowsRequest"],
                "inputs": [{"id": ids.TABLE, "property": "getRowsRequest",
                            "value": {"startRow": start, "endRow": start + 100, "sortModel": []}}],
                "state": [{"id": ids.URL, "property": "search", "value": search}]}
    else:
        key, outputs = payloads[kind]
        body = {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0],
                "changedPropIds": [f"{ids.URL}.search"],
                "inputs": [{"id": ids.URL, "property": "search", "value": search}], "state": []}
    return session.post(f"{base}/_dash-update-component", json=body, timeout=60)


def _worker_rss_kib(master_pid: int) -> dict[int, int]:
    """Resident memory of each gunicorn worker (children of the master), from /proc."""
    rss = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(master_pid):
            rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    return rss


def run(database_url: str, workers: int, users: int, seconds: float, seed: int = 7) -> dict:
    port = _free_port()
    env = {**os.environ, "FUNDATLAS_DB": database_url, "FUNDATLAS_AUTO_DEMO": "0",
           "FUNDATLAS_SECRET_KEY": os.environ.get("FUNDATLAS_SECRET_KEY", "loadtest-only-secret")}
    gunicorn = [sys.executable, "-m", "gunicorn", "app:server", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--timeout", "120", "--log-level", "warning"]
    server = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(f"{base}/_dash-layout", timeout=30).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a busy machine's slow first answer
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        payloads = _callback_payloads(database_url)
        # Warm every worker once so memory "before" is after start-up, not before imports.
        for _ in range(workers * 3):
            requests.get(f"{base}/_dash-layout", timeout=30)
        rss_before = _worker_rss_kib(server.pid)

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.time() + seconds
        kinds = ("headline", "map", "table_count", "rows", "headline", "map", "rows", "export")

        def user(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            session = requests.Session()
            while time.time() < stop_at:
                kind, search = rng.choice(kinds), rng.choice(FILTER_MIX)
                started = time.perf_counter()
                try:
                    response = _request(session, base, payloads, kind, search, rng)
                    ok = response.status_code in (200, 204)
                    reason = f"{kind} {search}: HTTP {response.status_code}"
                except requests.RequestException as exc:
                    ok, reason = False, f"{kind} {search}: {exc.__class__.__name__}"
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(reason)

        threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        # Memory once the caches and pools have filled (a third in), and at the end: stable means flat.
        time.sleep(seconds / 3)
        rss_warm = _worker_rss_kib(server.pid)
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        rss_after = _worker_rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    before, warm, after = sum(rss_before.values()), sum(rss_warm.values()), sum(rss_after.values())
    return {
        "workers": workers, "users": users, "seconds": round(wall, 1), "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1), "errors": len(errors), "error_samples": errors[:5],
        "p50_ms": round(percentile(0.50), 1), "p95_ms": round(percentile(0.95), 1),
        "p99_ms": round(percentile(0.99), 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "worker_rss_mib_start": round(before / 1024, 1), "worker_rss_mib_warm": round(warm / 1024, 1),
        "worker_rss_mib_end": round(after / 1024, 1),
        "worker_rss_growth_after_warmup": round(after / warm, 3) if warm else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=os.environ.get("FUNDATLAS_DB"), required="FUNDATLAS_DB" not in os.environ)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    figures = run(args.db, args.workers, args.users, args.seconds)
    print(f"{figures['requests']} requests in {figures['seconds']} s with {args.users} users on "
          f"{args.workers} workers: {figures['requests_per_s']} requests/s")
    print(f"latency p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms")
    print(f"errors {figures['errors']}; worker memory {figures['worker_rss_mib_start']} MiB at start, "
          f"{figures['worker_rss_mib_warm']} MiB warm, {figures['worker_rss_mib_end']} MiB at the end "
          f"(x{figures['worker_rss_growth_after_warmup']} after warm-up)")
    print(json.dumps(figures))
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
