"""A load's first half in a second process: parse the file and build its rows while the store writes.

A load does two kinds of work of similar weight: the loader's parse plus ``canonical_values``
(Python per record), and the store's write (validation and the database's inserts). One process
does them one after the other; ``prepared_in_child`` runs the first in a child process, so on a
machine with two or more cores the parent writes one chunk while the child prepares the next.

- The child is a fresh interpreter (``python -m data_sources.read_ahead``), not a fork: the parent
  may hold threads and an open store connection, which a fork must not copy.
- It sends chunks of prepared items as pickles on its stdout pipe; a thread of the parent moves
  them into a bounded queue as they come, so the child runs ahead of the writer by up to
  ``QUEUE_FRAMES`` chunks and then waits: memory stays flat however long the file is. The
  pickles come from our own child, never from the file.
- The parent sees the same stream of items, in the same order, as ``prepare`` gives in-process,
  and the same errors: a ``LoadError`` of the loader (with its file, record and field) is raised
  again in the parent at the same place in the stream; any other failure reads as it would have.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from data_sources import errors
from data_sources.enrich import canonical_values
from data_sources.errors import LoadError, Rejection
from data_sources.records import SourceRecord

# (source, record_id, rows, failure): a record's canonical rows, or why they could not be built.
# The failure is raised only if the record is kept (a duplicate's failure does not stop the load).
Prepared = tuple[str, str, list[tuple[object, ...]] | None, str | None]

CHUNK_ITEMS = 1000  # items per pickle: large enough to amortise, small enough to keep both busy
# Frames the child may be ahead by (about half a MB each): more than a load's write chunk, so the
# child keeps preparing while the parent writes one; bounded, so memory stays flat.
QUEUE_FRAMES = 16
_HEADER = struct.Struct("<Q")  # each frame: its length, then the pickle
MIN_BYTES = 64 * 1024 * 1024  # smaller files load in-process: a child takes about a second to start
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def prepare(
    items: Iterable[SourceRecord | Rejection], source_file: str, load_id: int
) -> Iterator[Prepared | Rejection]:
    """Each record of ``items`` with its canonical rows; rejections pass through."""
    for item in items:
        if isinstance(item, Rejection):
            yield item
            continue
        try:
            rows = canonical_values(item, source_file, load_id)
        except Exception as exc:  # noqa: BLE001 - said as the load's failure if the record is kept
            yield (item.source, item.record_id, None, f"{type(exc).__name__}: {exc}")
        else:
            yield (item.source, item.record_id, rows, None)


def wanted(path: Path, setting: str | None = None) -> bool:
    """Whether to read ``path`` in a child process: ``FUNDATLAS_READ_AHEAD`` (or ``setting``) is
    ``1`` (always), ``0`` (never) or ``auto`` (the default: files of 64 MB and more, given two
    cores or more)."""
    value = (setting or os.environ.get("FUNDATLAS_READ_AHEAD") or "auto").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return (os.cpu_count() or 1) >= 2 and path.stat().st_size >= MIN_BYTES


def can_send(options: dict) -> bool:
    """Whether the loader's options can go to a child (an in-memory mapping object may not)."""
    try:
        pickle.dumps(options, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any object pickle refuses: the load then reads in-process
        return False
    return True


def prepared_in_child(
    loader_name: str, path: Path, options: dict, source_file: str, load_id: int
) -> Iterator[Prepared | Rejection]:
    """``prepare(loader.read(path, **options), ...)`` computed in a child process, item by item."""
    request = pickle.dumps((loader_name, str(path), options, source_file, load_id), protocol=pickle.HIGHEST_PROTOCOL)
    env = dict(os.environ)
    # The child imports this package from where the parent did, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", "data_sources.read_ahead"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_FRAMES)
    stop = threading.Event()
    drain = threading.Thread(target=_drain, args=(child.stdout, frames, stop), daemon=True,
                             name="fundatlas-read-ahead")
    try:
        child.stdin.write(request)
        child.stdin.close()
        drain.start()
        while True:
            frame = frames.get()
            if frame is None:
                code = child.wait()
                raise LoadError(
                    source_file, f"the process reading the file stopped before the end (exit code {code})"
                )
            kind, payload = pickle.loads(frame)  # noqa: S301 - written by our own child
            if kind == "items":
                yield from payload
            elif kind == "done":
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=10)  # it exits once its last frame is out: no need to kill it
                return
            elif kind == "load_error":
                name, file, reason, record, field = payload
                error_type = getattr(errors, name, LoadError)
                if not (isinstance(error_type, type) and issubclass(error_type, LoadError)):
                    error_type = LoadError
                raise error_type(file, reason, record=record, field=field)
            else:
                raise LoadError(source_file, payload)
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        child.wait()
        while drain.is_alive():  # let the drain see the pipe's end even if the queue is full
            with contextlib.suppress(queue.Empty):
                frames.get(timeout=0.05)
        child.stdout.close()


def _drain(stream: BinaryIO, frames: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """Move the child's frames from the pipe to ``frames`` as they come (a thread: the pipe's read
    lets the writer run), so the child never waits on a pipe buffer the writer is not reading."""
    try:
        while not stop.is_set():
            header = stream.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            size = _HEADER.unpack(header)[0]
            frame = stream.read(size)
            if len(frame) < size:  # cut short: the child stopped while it wrote
                break
            frames.put(frame)
    except (OSError, ValueError):  # the pipe failed or was closed: the same as its end
        pass
    frames.put(None)  # the end of the pipe: the reader hears the child stopped


def _serve(request: bytes, out) -> None:
    """The child's side: read the request, prepare the file, send the items in chunks."""
    from data_sources import registry

    loader_name, path, options, source_file, load_id = pickle.loads(request)  # noqa: S301 - from our parent

    def send(message: tuple) -> None:
        frame = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(frame)))
        out.write(frame)
        out.flush()

    try:
        loader = registry.LOADERS[loader_name]
        batch: list[Prepared | Rejection] = []
        for item in prepare(loader.read(Path(path), **options), source_file, load_id):
            batch.append(item)
            if len(batch) >= CHUNK_ITEMS:
                send(("items", batch))
                batch = []
        if batch:
            send(("items", batch))
        send(("done", None))
    except LoadError as exc:
        send(("load_error", (type(exc).__name__, exc.file, exc.reason, exc.record, exc.field)))
    except Exception as exc:  # noqa: BLE001 - said to the parent, which fails the load with it
        send(("failure", f"{type(exc).__name__}: {exc}"))


def main() -> None:
    # The pipe to the parent is a private copy of fd 1; fd 1 itself then goes to stderr, so that
    # nothing a library prints can corrupt the stream of pickles.
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        _serve(sys.stdin.buffer.read(), out)
        out.flush()
    except BrokenPipeError:  # the parent stopped reading (its load failed): nothing to tell it
        os._exit(1)


if __name__ == "__main__":
    main()
