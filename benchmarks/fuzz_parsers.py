"""A timed fuzz run of every loader: random mutations of valid files, which must give records or a clear error.

    python benchmarks/fuzz_parsers.py --seconds 60                # 60 s per loader, every loader
    python benchmarks/fuzz_parsers.py --seconds 10 --loader iati --seed 7

For each loader, valid sample files (tests/hostile/samples.py: CSV, JSON, XML, UTF-16, and XLSX
whose sheet XML is mutated inside the zip) get random mutations (byte flips, inserted bytes and
tokens such as quotes, line breaks, NUL, ``&entity;``, ``NaN``, 400-digit numbers, deletions,
duplicated chunks, truncation). Each case is read twice: by the loader itself, and through
``registry.detect_format`` as a load would. Every record is also turned into canonical rows. An
outcome is ``records``, ``rejections`` (only), ``nothing``, ``LoadError`` or ``unrecognised``
(``FormatNotRecognised``); anything else (another exception, a case slower than
``--case-timeout``) is a crash: its input is saved to a temporary file and printed with the
traceback; the slowest case is saved too when it took over a second. Exit status 1 when there was
a crash. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_sources import registry  # noqa: E402
from tests.hostile import fuzzing  # noqa: E402


class _Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Hang()


def fuzz_loader(loader: str, seconds: float, rng: random.Random, case_timeout: float, folder: Path) -> dict:
    targets = [t for t in fuzzing.targets().values() if t.loader == loader]
    outcomes: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    crashes: list[dict] = []
    cases, slowest, slowest_case = 0, 0.0, b""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        target = targets[cases % len(targets)]
        operations = fuzzing.random_operations(rng)
        data = fuzzing.mutated(target, operations)
        path = folder / f"case-{loader}{target.suffix}"
        path.write_bytes(data)
        cases += 1
        for detect, counter in ((False, outcomes), (True, detected)):
            begun = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, case_timeout)
            try:
                counter[fuzzing.outcome(target, path, detect=detect)] += 1
            except (fuzzing.Crash, _Hang) as exc:
                reason = f"slower than {case_timeout:g} s" if isinstance(exc, _Hang) else str(exc)
                saved = Path(tempfile.mkstemp(prefix=f"fuzz-crash-{target.name}-", suffix=target.suffix)[1])
                saved.write_bytes(data)
                crashes.append({"target": target.name, "detect": detect, "input": str(saved),
                                "operations": repr(operations), "error": reason})
                counter["CRASH"] += 1
                print(f"CRASH {target.name} (detect={detect}), input saved to {saved}\n{reason}", flush=True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if time.monotonic() - begun > slowest:
                slowest, slowest_case = time.monotonic() - begun, data
    slowest_input = None
    if slowest > 1.0:  # worth a look: saved like a crash's input
        saved = Path(tempfile.mkstemp(prefix=f"fuzz-slow-{loader}-", suffix=targets[0].suffix)[1])
        saved.write_bytes(slowest_case)
        slowest_input = str(saved)
    return {
        "loader": loader,
        "cases": cases,
        "seconds": round(time.monotonic() - started, 1),
        "outcomes": dict(outcomes),
        "detected": dict(detected),
        "slowest_case_ms": round(slowest * 1000, 1),
        "slowest_input": slowest_input,
        "crashes": crashes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time per loader (default 60)")
    parser.add_argument("--loader", action="append", choices=list(registry.LOADERS),
                        help="fuzz only this loader (repeatable); default every loader")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--case-timeout", type=float, default=10.0, help="a case slower than this is a crash")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        for loader in args.loader or list(registry.LOADERS):
            result = fuzz_loader(loader, args.seconds, rng, args.case_timeout, Path(folder))
            results.append(result)
            print(f"{loader:10} {result['cases']:6} cases in {result['seconds']:5.1f} s, slowest "
                  f"{result['slowest_case_ms']:7.1f} ms; read: {result['outcomes']}; detected: "
                  f"{result['detected']}", flush=True)
    crashed = sum(len(r["crashes"]) for r in results)
    print(json.dumps({"seed": seed, "crashes": crashed, "loaders": results}))
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
