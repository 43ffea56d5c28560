"""A load that reads ahead in a child process stores what an in-process load stores, fails as it
fails, loses nothing already stored, and leaves no process behind."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from benchmarks import generate as gen
from data_sources import read_ahead
from data_sources.errors import LoadError
from data_sources.loading import LoadResult, load_file
from data_sources.schema import COLUMN_NAMES
from data_sources.store import allocations, loads, open_store
from tests.conftest import shared_file

REAL_FILES = [
    ("iati", "dportal_covid.xml"),
    ("360giving", "power_to_change_a002400000nO46WAAS.json"),
    ("360giving", "abct_a001p00000zgyHZAAY.xlsx"),
    ("hdx_3w", "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv"),
    ("oecd_crs", "water_germany_crs_microdata.csv"),
    ("ocha_fts", "custom-search-locationid-1-year-2020.json"),
]


def _rows(engine: Engine) -> list[tuple]:
    """Every stored row in insertion order, NaN made comparable."""
    with engine.connect() as conn:
        rows = conn.execute(select(*(allocations.c[c] for c in COLUMN_NAMES)).order_by(allocations.c.row_id))
        return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]


def _summary(result: LoadResult) -> tuple:
    return result.status, result.records_read, result.rows_stored, result.rejections, result.message


def _children() -> list[int]:
    """Read-ahead children of this process (one while a read-ahead runs)."""
    mine = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if fields[1] == mine and fields[0] != "Z":
                try:  # only read-ahead children: session fixtures (Redis, say) have their own
                    command = (entry / "cmdline").read_bytes()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if b"data_sources.read_ahead" in command:
                    found.append(int(entry.name))
    return found


@pytest.mark.parametrize(("folder", "name"), REAL_FILES)
def test_a_real_file_read_ahead_stores_what_an_in_process_load_stores(tmp_path: Path, folder: str, name: str) -> None:
    path = shared_file(folder, name)
    here = open_store(f"sqlite:///{tmp_path / 'here.sqlite'}")
    ahead = open_store(f"sqlite:///{tmp_path / 'ahead.sqlite'}")
    expected = load_file(here, path, read_ahead_setting="0")
    got = load_file(ahead, path, read_ahead_setting="1")
    assert expected.rows_stored > 0
    assert _summary(got) == _summary(expected)
    assert _rows(ahead) == _rows(here)
    assert _children() == []


def test_read_ahead_into_postgresql_and_a_second_file_with_the_same_records(engine: Engine, tmp_path: Path) -> None:
    """Records already stored from another file are rejected the same way when read ahead."""
    path = shared_file("iati", "usaid-798.xml")
    copy = tmp_path / "usaid-copy.xml"
    shutil.copyfile(path, copy)
    first = load_file(engine, path, read_ahead_setting="1")
    before = _rows(engine)
    # Same records under another name; the bytes differ by a trailing newline so it is not "unchanged".
    copy.write_bytes(path.read_bytes() + b"\n")
    second = load_file(engine, copy, read_ahead_setting="1")
    assert first.rows_stored > 0
    assert second.rows_stored == 0
    assert second.records_read == first.records_read
    assert {r.reason for r in second.rejections} >= {f"already stored from {first.source_file}; that copy is kept"}
    assert _rows(engine) == before


def test_a_malformed_file_fails_the_same_way_and_loses_nothing_stored(tmp_path: Path) -> None:
    good = shared_file("iati", "worldbank-679.xml")
    text = shared_file("iati", "worldbank-sv.xml").read_bytes()
    broken = tmp_path / "truncated.xml"
    broken.write_bytes(text[: len(text) * 2 // 3])  # cut inside an activity
    messages = {}
    for setting in ("0", "1"):
        engine = open_store(f"sqlite:///{tmp_path / f'store-{setting}.sqlite'}")
        load_file(engine, good, read_ahead_setting=setting)
        before = _rows(engine)
        with pytest.raises(LoadError) as caught:
            load_file(engine, broken, read_ahead_setting=setting)
        messages[setting] = str(caught.value)
        assert _rows(engine) == before  # the earlier load is whole, nothing of the broken file is kept
        with engine.connect() as conn:
            status = conn.execute(select(loads.c.status).where(loads.c.source_file == str(broken.resolve()))).scalar()
        assert status == "failed"
    assert messages["1"] == messages["0"]
    assert "malformed or truncated XML at line" in messages["1"]
    assert _children() == []


def test_a_load_stopped_while_the_child_reads_rolls_back_and_stops_the_child(tmp_path: Path) -> None:
    gen.generate(tmp_path / "gen", 30_000, workers=1)
    path = next((tmp_path / "gen").glob("*iati*.xml"))
    engine = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    seen: list[int] = []

    def stop_after_first_chunk(records: int) -> None:
        seen.append(records)
        assert _children(), "the child is still reading when the first chunk is written"
        raise RuntimeError("stopped by the user")

    with pytest.raises(LoadError, match="RuntimeError: stopped by the user"):
        load_file(engine, path, progress=stop_after_first_chunk, read_ahead_setting="1")
    assert seen == [5000]
    assert _children() == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(allocations)).scalar() == 0


def test_a_failure_in_the_child_is_said_as_the_load_failure(tmp_path: Path) -> None:
    path = shared_file("iati", "usaid-798.xml")
    items = read_ahead.prepared_in_child("no-such-format", path, {}, "the-file", 1)
    with pytest.raises(LoadError, match=r"the-file: KeyError: 'no-such-format'"):
        next(items)
    assert _children() == []


def test_closing_the_stream_early_stops_the_child() -> None:
    path = shared_file("iati", "dportal_covid.xml")
    items = read_ahead.prepared_in_child("iati", path, {}, "the-file", 1)
    first = next(items)
    assert first[0] == "iati" and first[2]  # a record with its rows
    assert len(_children()) == 1
    items.close()
    assert _children() == []


def test_the_setting_chooses_when_to_read_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small.xml"
    small.write_bytes(b"<iati-activities/>")
    monkeypatch.delenv("FUNDATLAS_READ_AHEAD", raising=False)
    assert read_ahead.wanted(small) is False  # auto: too small to pay for a second process
    assert read_ahead.wanted(small, "1") is True
    monkeypatch.setenv("FUNDATLAS_READ_AHEAD", "1")
    assert read_ahead.wanted(small) is True
    assert read_ahead.wanted(small, "0") is False
    big = tmp_path / "big.xml"
    with open(big, "wb") as fh:
        fh.truncate(read_ahead.MIN_BYTES)
    monkeypatch.setenv("FUNDATLAS_READ_AHEAD", "auto")
    assert read_ahead.wanted(big) is ((os.cpu_count() or 1) >= 2)


class _ExitOnArrival:
    """Pickles in the parent; unpickling it ends the child at once, before it sends anything."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_child_that_dies_is_said_with_its_exit_code() -> None:
    path = shared_file("iati", "usaid-798.xml")
    items = read_ahead.prepared_in_child("iati", path, {"crash": _ExitOnArrival()}, "the-file", 1)
    stopped = r"the-file: the process reading the file stopped before the end \(exit code 3\)"
    with pytest.raises(LoadError, match=stopped):
        next(items)
    assert _children() == []


def test_a_frame_cut_short_reads_as_the_end_of_the_child() -> None:
    import io
    import pickle
    import queue
    import struct
    import threading

    whole = pickle.dumps(("items", []))
    stream = io.BytesIO(struct.pack("<Q", len(whole)) + whole + struct.pack("<Q", 100) + b"only ten b")
    frames: queue.Queue = queue.Queue()
    read_ahead._drain(stream, frames, threading.Event())
    assert [frames.get_nowait(), frames.get_nowait()] == [whole, None]
    assert frames.empty()


def test_options_a_child_cannot_receive_load_in_process(tmp_path: Path) -> None:
    assert read_ahead.can_send({"units": "thousands"}) is True
    assert read_ahead.can_send({"mapping": lambda row: row}) is False  # a lambda does not pickle
