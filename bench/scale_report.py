"""`bench/scale.json` (the measured rows) and `bench/scale.md` (the table and a projection).

The projection to the mission's size (400,000 units, 1B variants) is a straight line through the
smallest and the largest measured size (per-unit slope of the driver's peak RSS; the driver's
CPU seconds and verify's seconds per unit), printed with the numbers it rests on.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

MISSION_UNITS = 400_000
MISSION_VARIANTS = 1_000_000_000
EXECUTORS = (10, 100, 1000)


def _slope(rows: list[dict], key: str) -> tuple[float, float]:
    """(intercept, per unit) of `key` through the smallest and the largest size."""
    a, b = rows[0], rows[-1]
    if b["units"] == a["units"]:
        return a[key], 0.0
    per = (b[key] - a[key]) / (b["units"] - a["units"])
    return a[key] - per * a["units"], per


def projection(rows: list[dict]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: r["units"])
    rss0, rss_per = _slope(rows, "driver_peak_rss_mib")
    for r in rows:  # the driver's peak when the run step ended (before status/verify/report)
        r.setdefault("driver_rss_after_run_mib",
                     r["steps"]["run"].get("driver_peak_rss_mib_after", r["driver_peak_rss_mib"]))
    run0, run_per = _slope(rows, "driver_rss_after_run_mib")
    big = rows[-1]
    verify_s_per_variant = big["steps"]["verify"]["wall_s"] / max(1, big["variants"])
    verify_s_per_unit = big["steps"]["verify"]["wall_s"] / big["units"]
    run_cpu_per_unit = big["run_driver_cpu_s_per_unit"]
    return {
        "from_sizes": [r["units"] for r in rows],
        "driver_peak_rss_mib": round(rss0 + rss_per * MISSION_UNITS, 0),
        "driver_rss_intercept_mib": round(rss0, 1),
        "driver_rss_mib_per_1000_units": round(rss_per * 1000, 3),
        "driver_rss_after_run_mib": round(run0 + run_per * MISSION_UNITS, 0),
        "driver_rss_after_run_intercept_mib": round(run0, 1),
        "driver_rss_after_run_mib_per_1000_units": round(run_per * 1000, 3),
        "run_driver_cpu_s_per_unit": run_cpu_per_unit,
        "run_driver_cpu_hours": round(run_cpu_per_unit * MISSION_UNITS / 3600, 2),
        "verify_local_s_per_variant": verify_s_per_variant,
        "verify_s_per_unit": round(verify_s_per_unit, 5),
        "verify_local_hours_units": round(verify_s_per_unit * MISSION_UNITS / 3600, 2),
        "verify_spark_minutes": {n: round(verify_s_per_unit * MISSION_UNITS / n / 60, 1)
                                 for n in EXECUTORS},
    }


def _table(rows: list[dict]) -> list[str]:
    lines = ["| units | documents | variants | wall s | plan s | run s | status s | verify s | "
             "report s | card s | driver peak RSS MiB | driver peak after plan / run / verify / "
             "report MiB | executor peak RSS MiB | JVM peak RSS MiB | driver CPU s / unit (run) "
             "| driver CPU s / unit (all) | output files | verify |",
             "|" + "---|" * 18]
    for r in sorted(rows, key=lambda r: r["units"]):
        s = r["steps"]
        lines.append(
            f"| {r['units']:,} | {r['documents']:,} | {r['variants']:,} | {r['wall_s']} | "
            + " | ".join(str(s[k]["wall_s"]) for k in ("plan", "run", "status", "verify",
                                                       "report", "card"))
            + f" | {r['driver_peak_rss_mib']} | "
            + " / ".join(str(s[k].get("driver_peak_rss_mib_after", "-"))
                         for k in ("plan", "run", "verify", "report"))
            + f" | {r['executor_peak_rss_mib']} | "
            f"{r['jvm_peak_rss_mib']} | {r['run_driver_cpu_s_per_unit']} | "
            f"{r['driver_cpu_s_per_unit']} | {r['output_files']:,} | "
            f"{'ok' if r['verify_ok'] else 'FAILED'} |")
    return lines


def markdown(rows: list[dict], settings: Any) -> str:
    p = projection(rows)
    spark = ", ".join(f"{n} executors: {m} min" for n, m in p["verify_spark_minutes"].items())
    return "\n".join([
        "# Scale benchmark (`python -m bench --scale`)", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.platform()}); Spark `{settings.master}`, the dry "
        f"engine, {settings.unit_docs} tiny documents per unit, {settings.num_pairs} pairs. "
        "Each size runs in a fresh driver process: plan, run, status, verify (local), report, "
        "card. Wall seconds per step; RSS peaks (driver: getrusage; executors: the Python "
        "workers' VmHWM sampled from /proc; JVM likewise).", "",
        *_table(rows), "",
        "## Projection to 400,000 units and 1B variants", "",
        f"A straight line through the measured sizes {p['from_sizes']}:", "",
        "| what | projected | from |", "|---|---|---|",
        f"| driver peak RSS at {MISSION_UNITS:,} units | {p['driver_peak_rss_mib']:,.0f} MiB | "
        f"{p['driver_rss_intercept_mib']} MiB + {p['driver_rss_mib_per_1000_units']} MiB per "
        "1,000 units |",
        f"| driver peak RSS when the run step ends, at {MISSION_UNITS:,} units | "
        f"{p['driver_rss_after_run_mib']:,.0f} MiB | {p['driver_rss_after_run_intercept_mib']} "
        f"MiB + {p['driver_rss_after_run_mib_per_1000_units']} MiB per 1,000 units |",
        f"| driver CPU of the run | {p['run_driver_cpu_hours']} h | "
        f"{p['run_driver_cpu_s_per_unit']} s per unit (largest size) |",
        f"| local verify, per-unit cost of {MISSION_UNITS:,} units | "
        f"{p['verify_local_hours_units']} h | {p['verify_s_per_unit']} s per unit (largest "
        "size; its units are tiny, so this is the per-unit floor: the per-variant cost of "
        "2,500-variant units comes on top) |",
        f"| `verify --spark`, the same per-unit cost | {spark} | divided over executors (listing "
        "and the driver's combine are not divided) |", "",
    ]) + "\n"


def write(rows: list[dict], settings: Any, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "scale.md").write_text(markdown(rows, settings))
