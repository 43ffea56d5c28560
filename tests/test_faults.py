"""Faults, on SQLite and on PostgreSQL/PostGIS: a load killed with SIGKILL leaves the store exactly
as it was and does not lock it; loads at once (other files, the same file, shared records) give the
store they would give one after the other.

Each load runs as ``fundatlas load FILE --db URL`` in a process of its own: the command's code
(``data_sources.cli.main``) behind a few SQLAlchemy event hooks (``_HOOKED_CLI``) that print where
the load is and can stop it there, so a kill lands at a known point of the load (rows written, or
just before COMMIT) whatever the machine's speed; nothing here depends on timing.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree
from sqlalchemy import Engine, select, text

from data_sources.loading import load_file
from data_sources.store import allocations, load_rejections, loads, open_store
from tests.conftest import REPO_ROOT, _drop_pg, _new_pg_url, shared_file

STORED_BEFORE = ("iati", "dportal_covid.xml")  # it has rejections: all three tables hold rows
KILLED_MID_LOAD = ("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv")
KILLED_AT_COMMIT = ("iati", "usaid-798.xml")
AT_ONCE = ("iati", "dportal_foodsecurity.xml")
OTHER = ("iati", "usaid-798.xml")
WAIT = 90  # seconds any one step may take on a busy machine; a step normally takes one or two

# `fundatlas load` (app.main calls data_sources.cli.main; dash is not imported), with hooks:
# FUNDATLAS_PAUSE=chunk:N stops after the Nth insert of allocation rows (one per chunk of records),
# FUNDATLAS_PAUSE=commit just before the load's COMMIT (its `loads` row already says succeeded); the
# process then waits for a line on stdin (or SIGKILL). FUNDATLAS_GATE=1 waits for a line before loading.
_HOOKED_CLI = r"""
import os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from data_sources import cli, loading, remote  # noqa: F401  (imported before "ready", not while loading)

pause_at, chunks = os.environ.get("FUNDATLAS_PAUSE", ""), [0]

def say(marker):
    print("@@ " + marker, flush=True)

def stop(where):
    say("paused " + where)
    sys.stdin.readline()

@event.listens_for(Engine, "after_execute")
def _after(conn, statement, multiparams, params, execution_options, result):
    sql = " ".join(str(statement).split()).lower()
    if sql.startswith("select") and " from loads" in sql and "checksum" in sql:
        say("checked")

# Allocation rows go in by executemany or COPY, below SQLAlchemy's statement events: count the calls.
_insert_rows = loading.insert_allocation_rows

def _counted_insert(conn, rows):
    _insert_rows(conn, rows)
    chunks[0] += 1
    if pause_at == f"chunk:{chunks[0]}":
        stop(pause_at)

loading.insert_allocation_rows = _counted_insert

@event.listens_for(Engine, "commit")
def _commit(conn):
    if chunks[0] and pause_at == "commit":
        stop("commit")

say("ready")
if os.environ.get("FUNDATLAS_GATE"):
    sys.stdin.readline()
sys.exit(cli.main(sys.argv[1:]))
"""


class LoadProcess:
    """One ``fundatlas load`` in a process of its own; its stdout is read line by line as it comes."""

    def __init__(self, url: str, path: Path, pause: str = "", gate: bool = False) -> None:
        env = {**os.environ, "FUNDATLAS_PAUSE": pause, "FUNDATLAS_GATE": "1" if gate else ""}
        self.name = f"load {path.name} ({pause or 'no pause'})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOOKED_CLI, "load", str(path), "--db", url],
            cwd=REPO_ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, self._lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, None), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str], new: queue.Queue | None) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if new is not None:
                new.put(line.rstrip("\n"))
        if new is not None:
            new.put(None)

    def expect(self, marker: str) -> None:
        """Wait until the process prints ``@@ marker``; fail if it ends or takes too long first."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{self.name}: no '{marker}' within {WAIT} s; stdout {self.stdout}")
            if line is None:
                self.proc.wait(WAIT)
                pytest.fail(f"{self.name} ended (exit {self.proc.returncode}) before '{marker}': {self._output()}")
            if line == f"@@ {marker}":
                return

    def go_on(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        assert self.running, f"{self.name} ended before it was killed: {self._output()}"
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(WAIT) == -signal.SIGKILL
        self._join()

    def finish(self) -> str:
        """Wait for the end; the exit status must be 0, with no traceback. Returns the load's status."""
        self.proc.stdin.close()
        self.proc.wait(WAIT)
        self._join()
        assert self.proc.returncode == 0, f"{self.name}: {self._output()}"
        assert not any("Traceback" in line for line in self.stderr), self._output()
        statuses = [m.group(1) for line in self.stdout if (m := re.search(r"\] (\w+): ", line))]
        assert len(statuses) == 1, self._output()
        return statuses[0]

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(WAIT)

    def _output(self) -> str:
        return "stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)

    def close(self) -> None:
        if self.running:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._join()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not stream.closed:
                stream.close()


@pytest.fixture
def processes():
    started: list[LoadProcess] = []

    def start(*args, **kwargs) -> LoadProcess:
        started.append(LoadProcess(*args, **kwargs))
        return started[-1]

    yield start
    for process in started:  # a failed test leaves no process behind
        process.close()


@pytest.fixture
def reference_engine(store_url, request, tmp_path):
    """A second empty store of the same kind, for loads one after the other."""
    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    else:
        url = _new_pg_url(request.getfixturevalue("pg_template"))
    engine = open_store(url)
    yield engine
    engine.dispose()
    if not store_url.startswith("sqlite"):
        _drop_pg(url)


def _snapshot(engine: Engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        return {
            table.name: pd.read_sql(select(table).order_by(key), conn)
            for table, key in (
                (allocations, allocations.c.row_id),
                (loads, loads.c.load_id),
                (load_rejections, load_rejections.c.rejection_id),
            )
        }


def _assert_as_before(engine: Engine, before: dict[str, pd.DataFrame]) -> None:
    after = _snapshot(engine)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def _assert_sqlite_intact(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalars().all() == ["ok"]


def _wait_for_lock_waiters(engine: Engine, count: int) -> None:
    """PostgreSQL: wait until ``count`` sessions of this database wait for a lock held by another."""
    sql = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + WAIT
    with engine.connect() as conn:
        while (waiting := conn.execute(sql).scalar()) < count:
            assert time.monotonic() < deadline, f"{waiting} of {count} loads wait for the lock after {WAIT} s"
            time.sleep(0.05)
            conn.rollback()  # a fresh snapshot of pg_stat_activity


def _contents(engine: Engine) -> dict[str, pd.DataFrame]:
    """Per table, the rows without their generated ids, in a stable order: stores loaded alike compare equal."""
    with engine.connect() as conn:
        rows = pd.read_sql(select(allocations), conn).drop(columns=["row_id", "load_id", "geom"], errors="ignore")
        done = pd.read_sql(select(loads.c.source_file, loads.c.status, loads.c.records_read, loads.c.rows_stored,
                                  loads.c.records_rejected, loads.c.message), conn)
        rejected = pd.read_sql(
            select(loads.c.source_file, load_rejections.c.record_id, load_rejections.c.field,
                   load_rejections.c.reason).join(loads, loads.c.load_id == load_rejections.c.load_id),
            conn,
        )
    return {
        name: frame.sort_values(list(frame.columns)).reset_index(drop=True)
        for name, frame in (("allocations", rows), ("loads", done), ("load_rejections", rejected))
    }


def test_a_killed_load_leaves_the_store_as_it_was_and_unlocked(store_url, engine, processes):
    """SIGKILL in the middle of a big load (10,000 of its 10,902 records' rows written), and another
    load just before its COMMIT (its `loads` row already updated to succeeded): all three tables
    are as before, and the store takes the file killed at commit as a new load."""
    mid_load = processes(store_url, shared_file(*KILLED_MID_LOAD), pause="chunk:2", gate=True)
    at_commit_file = shared_file(*KILLED_AT_COMMIT)
    at_commit = processes(store_url, at_commit_file, pause="commit", gate=True)
    first = load_file(engine, shared_file(*STORED_BEFORE))  # while they start
    assert first.status == "succeeded" and first.rows_stored > 0 and first.rejections
    before = _snapshot(engine)
    wal = Path(engine.url.database + "-wal") if engine.dialect.name == "sqlite" else None
    if wal:
        with engine.connect() as conn:  # an empty WAL: what is in it at the kill is the killed load's
            assert conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0] == 0
        assert wal.stat().st_size == 0

    mid_load.expect("ready")
    mid_load.go_on()
    mid_load.expect("paused chunk:2")  # 10,000 records' rows in its open transaction
    at_commit.expect("ready")
    at_commit.go_on()
    at_commit.expect("checked")  # no load of its file yet: it goes on, to wait for the store's write lock
    if engine.dialect.name == "postgresql":
        _wait_for_lock_waiters(engine, 1)
    _assert_as_before(engine, before)  # others never see uncommitted rows
    if wal:
        assert wal.stat().st_size > 0  # the big transaction spilled pages into the WAL, never committed
    mid_load.kill()
    _assert_as_before(engine, before)
    _assert_sqlite_intact(engine)

    at_commit.expect("paused commit")  # it got the lock the killed load held, and wrote every row
    at_commit.kill()
    _assert_as_before(engine, before)  # not its rows, nor a 'running' or 'succeeded' row in `loads`
    _assert_sqlite_intact(engine)

    # No stale lock or half transaction: the file killed at commit is a new load (not 'unchanged').
    result = load_file(engine, at_commit_file)
    assert result.status == "succeeded" and result.rows_stored > 0
    after = _snapshot(engine)
    with engine.connect() as conn:
        kept = pd.read_sql(select(allocations).where(allocations.c.load_id != result.load_id)
                           .order_by(allocations.c.row_id), conn)
    pd.testing.assert_frame_equal(kept, before["allocations"])
    assert len(after["allocations"]) == len(before["allocations"]) + result.rows_stored
    pd.testing.assert_frame_equal(after["loads"].iloc[: len(before["loads"])], before["loads"])
    assert after["loads"].iloc[len(before["loads"]):]["status"].tolist() == ["succeeded"]
    pd.testing.assert_frame_equal(after["load_rejections"], before["load_rejections"])  # the file has none
    _assert_sqlite_intact(engine)


def _activity_of(record_id: str) -> str:
    return record_id.split("#", 1)[0]  # an IATI record is an activity's transaction: ID#t0, ID#t1, ...


def _with_an_activity_of(target: Path, source: Path, out: Path) -> str:
    """``target`` plus the first activity of ``source``: another file sharing that activity's records.
    Returns the activity's identifier."""
    tree = etree.parse(str(target))
    activity = etree.parse(str(source)).getroot().find("iati-activity")
    tree.getroot().append(activity)
    tree.write(str(out), xml_declaration=True, encoding="utf-8")
    return activity.findtext("iati-identifier")


def test_loads_at_once_give_the_store_of_loads_one_after_the_other(
    store_url, engine, reference_engine, processes, tmp_path
):
    """Three loads at once: a file (held open with its rows written), the same file again, and
    another file that shares an activity with it. The same file ends `unchanged`, the shared records
    are stored once, and the store equals loading the first file, then the other."""
    first_file = shared_file(*AT_ONCE)
    other_file = tmp_path / "usaid-798-with-a-foodsecurity-activity.xml"
    shared_id = _with_an_activity_of(shared_file(*OTHER), first_file, other_file)

    first = processes(store_url, first_file, pause="chunk:1")
    same = processes(store_url, first_file, gate=True)
    other = processes(store_url, other_file, gate=True)
    # While they start: the same two files one after the other, into a store of the same kind.
    expected = [load_file(reference_engine, first_file), load_file(reference_engine, other_file)]
    assert [r.status for r in expected] == ["succeeded", "succeeded"]
    assert expected[1].rejections and {_activity_of(r.record_id) for r in expected[1].rejections} == {shared_id}

    for process in (first, same, other):
        process.expect("paused chunk:1" if process is first else "ready")
    for process in (same, other):
        process.go_on()
        process.expect("checked")  # nothing committed yet: both go on to load, under the lock
    if engine.dialect.name == "postgresql":
        _wait_for_lock_waiters(engine, 2)
    else:
        time.sleep(0.3)  # SQLite: they wait in the busy handler, which the database does not show
    assert same.running and other.running  # neither can end while the first load is open
    first.go_on()
    assert [first.finish(), same.finish(), other.finish()] == ["succeeded", "unchanged", "succeeded"]

    stored, reference = _contents(engine), _contents(reference_engine)
    for name in reference:
        pd.testing.assert_frame_equal(stored[name], reference[name], obj=name)
    with engine.connect() as conn:
        copies = conn.execute(
            select(allocations.c.source_file)
            .where(allocations.c.record_id.startswith(shared_id, autoescape=True)).distinct()
        ).scalars().all()
    assert copies == [str(first_file.resolve())]
    _assert_sqlite_intact(engine)
