"""Driver-side progress: a bar on a terminal (stderr); otherwise a log line when the counts have
changed, at most every 30 s, and one at the end."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable

from mga_spark.job.logs import TERMINAL

log = logging.getLogger(__name__)
Progress = Callable[[Counter], None]  # a runner calls it with the totals so far of its units


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
        self._counts: Counter = Counter()
        self._logged: Counter = Counter()  # the counts of the last line logged

    def __enter__(self) -> ProgressView:
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("units"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[line]}"), TimeRemainingColumn(), transient=False,
                console=Console(stderr=True),  # stdout is for the command's result
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("units", total=self.total, completed=self.base,
                                            line="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.enabled and self._counts != self._logged:
            self._log(self._counts)

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
        self._counts = Counter(counts)
        if self._bar is not None:
            done = self.base + counts.get("units_done", 0)
            self._bar.update(self._task, completed=done, line=self.line(counts))
        elif self._counts != self._logged and time.time() - self._last_log >= self.log_every:
            self._log(self._counts)

    def _log(self, counts: Counter) -> None:
        self._last_log, self._logged = time.time(), Counter(counts)
        done = self.base + counts.get("units_done", 0)
        log.info("units %d/%d | %s", done, self.total, self.line(counts), extra=TERMINAL)
