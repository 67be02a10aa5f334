"""How full the engine was during each bench phase, read from a bench log.

vLLM logs, every ~10 s, the generation throughput of the interval and the requests running at
its end ("Engine 000: ... Avg generation throughput: 41.3 tokens/s, Running: 5 reqs, ...");
the bench logs each phase's name and duration when it ends ("bench.run: bare
engine: 546.1s, ..."). Per phase this gives the seconds spent, and the output tokens made, with
few or many requests running: where a phase's time goes when its rate falls short of the
engine's. Granularity is the log interval; a line's running count stands for its interval.

    python -m bench.occupancy /tmp/bench.log [--year 2026]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

ENGINE = re.compile(r"INFO (\d\d-\d\d \d\d:\d\d:\d\d) \[loggers\.py:\d+\] Engine \d+: .*?"
                    r"Avg generation throughput: ([\d.]+) tokens/s, Running: (\d+) reqs")
# the harness's logger: `bench.run`, `mga_spark.bench.run` in logs written before it moved
PHASE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO (?:mga_spark\.)?bench\.run: "
                   r"(.+?): ([\d.]+)s, ")
BANDS = ((1, 4), (5, 15), (16, 63), (64, 10**9))


def parse(text: str, year: int) -> tuple[list[tuple[datetime, float, int]],
                                         list[tuple[str, datetime, datetime]]]:
    engine, phases = [], []
    for line in text.splitlines():
        if m := ENGINE.search(line):
            when = datetime.strptime(f"{year}-{m.group(1)}", "%Y-%m-%d %H:%M:%S")
            engine.append((when, float(m.group(2)), int(m.group(3))))
        elif m := PHASE.search(line):
            end = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            phases.append((m.group(2), end - timedelta(seconds=float(m.group(3))), end))
    return engine, phases


def occupancy(engine: list[tuple[datetime, float, int]], start: datetime, end: datetime) -> dict:
    """Seconds and output tokens by requests running, over the log intervals inside a phase."""
    bands = {f"{lo}-{hi}" if hi < 10**9 else f"{lo}+": {"seconds": 0.0, "output_tokens": 0.0}
             for lo, hi in BANDS}
    most = 0
    for (t0, _, _), (t1, tok_s, running) in zip(engine, engine[1:], strict=False):
        if t0 < start or t1 > end or running == 0:
            continue
        seconds = (t1 - t0).total_seconds()
        most = max(most, running)
        for (lo, hi), band in zip(BANDS, bands.values(), strict=True):
            if lo <= running <= hi:
                band["seconds"] += seconds
                band["output_tokens"] += tok_s * seconds
    return {"most_running_logged": most,
            "bands": {k: {"seconds": round(v["seconds"]),
                          "output_tokens": round(v["output_tokens"])} for k, v in bands.items()}}


def report(text: str, year: int) -> list[dict]:
    engine, phases = parse(text, year)
    return [{"phase": name, "seconds": round((end - start).total_seconds(), 1),
             **occupancy(engine, start, end)} for name, start, end in phases]


def markdown(rows: list[dict]) -> list[str]:
    bands = list(rows[0]["bands"]) if rows else []
    head = "| phase | seconds | " + " | ".join(f"{b} running: s (output tokens)" for b in bands)
    return [head + " |", "|---|---|" + "---|" * len(bands),
            *[f"| {r['phase']} | {r['seconds']} | " + " | ".join(
                f"{r['bands'][b]['seconds']} ({r['bands'][b]['output_tokens']})" for b in bands)
              + " |" for r in rows]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("log", type=Path)
    p.add_argument("--year", type=int, default=datetime.now().year,
                   help="vLLM's log lines carry no year")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    rows = report(a.log.read_text(errors="replace"), a.year)
    print(json.dumps(rows, indent=1) if a.json else "\n".join(markdown(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
