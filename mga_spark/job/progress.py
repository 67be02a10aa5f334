"""Driver-side progress: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

log = logging.getLogger(__name__)


class ProgressView:
    """Shows units done / total, documents, output tokens/s, acceptance and ETA."""

    def __init__(self, total_units: int, already_done: int = 0, enabled: bool = True,
                 log_every: float = 30.0) -> None:
        self.total = total_units
        self.base = already_done
        self.enabled = enabled
        self.log_every = log_every
        self.started = time.time()
        self._last_log = 0.0
        self._bar = None
        self._task = None

    def __enter__(self) -> ProgressView:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("units"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[line]}"), TimeRemainingColumn(), transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("units", total=self.total, completed=self.base,
                                            line="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def line(self, counts: Counter) -> str:
        elapsed = max(time.time() - self.started, 1e-9)
        done = counts.get("units_done", 0)
        slots = counts.get("pair_slots", 0)
        acceptance = f"{counts.get('accepted', 0) / slots:.0%}" if slots else "-"
        left = self.total - self.base - done - counts.get("units_failed", 0)
        eta = f"{left * elapsed / done:.0f}s" if done else "?"
        return (
            f"docs {counts.get('documents', 0)} | out tok/s "
            f"{counts.get('output_tokens', 0) / elapsed:,.0f} | accepted {acceptance} | "
            f"failed units {counts.get('units_failed', 0)} | eta {eta}"
        )

    def update(self, counts: Counter) -> None:
        if not self.enabled:
            return
        done = self.base + counts.get("units_done", 0)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, line=self.line(counts))
        elif time.time() - self._last_log >= self.log_every:
            self._last_log = time.time()
            log.info("units %d/%d | %s", done, self.total, self.line(counts))
