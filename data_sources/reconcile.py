"""The passes that make the merged table truthful, run after loads (``fundatlas load`` runs them, and
``fundatlas reconcile`` on demand), in one transaction under the store's write lock:

1. places (``boundaries.assign_places``): points into the admin areas of added boundary files, and
   the sources' admin names and P-codes matched to those areas;
2. organisations (``organisations.build_organisations``): one identity per organisation across streams;
3. duplicates (``duplicates.link_duplicates``): rows that report money another stream also reports get
   ``duplicate_of``, and the ledger says why.

Each pass is idempotent and raises the store's data version only when it changed something, so a
run after a load that changed nothing costs reading, not rewriting. A pass that fails rolls the
whole run back: the store is as it was, and the error names the pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

PASSES = ("places", "organisations", "duplicates")


@dataclass
class ReconcileResult:
    seconds: dict[str, float] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)


class ReconcileError(RuntimeError):
    """A pass failed; nothing of the run was kept."""


def _pass_function(name: str) -> Callable:
    if name == "places":
        from data_sources.boundaries import assign_places

        return assign_places
    if name == "organisations":
        from data_sources.organisations import build_organisations

        return build_organisations
    from data_sources.duplicates import link_duplicates

    return link_duplicates


def reconcile(engine: Engine, passes: tuple[str, ...] = PASSES,
              progress: Callable[[str], None] | None = None) -> ReconcileResult:
    """Run ``passes`` in order, in one transaction under the store's write lock."""
    from data_sources.store import lock_for_writes

    unknown = set(passes) - set(PASSES)
    if unknown:
        raise ValueError(f"unknown pass(es) {sorted(unknown)}; the passes are {', '.join(PASSES)}")
    result = ReconcileResult()
    with engine.begin() as conn:
        lock_for_writes(conn)
        for name in PASSES:
            if name not in passes:
                continue
            if progress is not None:
                progress(name)
            started = time.perf_counter()
            try:
                result.stats[name] = _pass_function(name)(conn)
            except Exception as exc:
                raise ReconcileError(f"the {name} pass failed, nothing of this run was kept: {exc}") from exc
            result.seconds[name] = time.perf_counter() - started
    return result
