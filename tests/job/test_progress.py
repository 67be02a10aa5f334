"""The progress view off a terminal: a line when the counts changed (at most every `log_every`
seconds) and one at the end, each marked for the quiet terminal."""

from __future__ import annotations

import logging
from collections import Counter

from mga_spark.job.progress import ProgressView


def test_off_a_terminal_a_line_per_change_and_one_at_the_end(caplog) -> None:
    caplog.set_level(logging.INFO, logger="mga_spark.job.progress")
    one = Counter(units_done=1, documents=4, pair_slots=20, accepted=10, output_tokens=100)
    with ProgressView(total_units=3, already_done=1, log_every=0.0) as view:
        for counts in (Counter(), Counter(), one, one):
            view.update(counts)
        view.update(one + Counter(units_failed=1))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(r.terminal for r in caplog.records)
    assert lines[0].startswith("units 2/3 | docs 4 | ") and "accepted 50%" in lines[0]
    assert "failed units 1 | eta 0s" in lines[1]


def test_lines_wait_for_log_every_but_the_last_state_is_logged(caplog) -> None:
    caplog.set_level(logging.INFO, logger="mga_spark.job.progress")
    with ProgressView(total_units=2, log_every=3600.0) as view:
        view.update(Counter(units_done=1))  # the first change: logged
        view.update(Counter(units_done=2))  # within log_every: held back until the end
    assert [r.getMessage().split(" |")[0] for r in caplog.records] == ["units 1/2", "units 2/2"]


def test_disabled_shows_nothing(caplog) -> None:
    caplog.set_level(logging.INFO, logger="mga_spark.job.progress")
    with ProgressView(total_units=2, enabled=False, log_every=0.0) as view:
        view.update(Counter(units_done=2))
    assert caplog.records == []
