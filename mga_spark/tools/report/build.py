"""`mga-spark report OUTPUT`: what an output holds, as plots and tables, written to OUTPUT/report/.

`facts` aggregates the output, `page` draws the PNGs (matplotlib) and the self-contained HTML page
(the same PNGs embedded as base64: it opens offline, from anywhere); this module writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mga_spark import layout
from mga_spark.io import write
from mga_spark.job import card
from mga_spark.tools.report import page as report_page
from mga_spark.tools.report.facts import collect


@dataclass(frozen=True)
class Report:
    html: str  # where index.html was written
    pngs: list[str]


def build(output: str) -> Report:
    """Collect, plot, write OUTPUT/report/index.html and the PNGs; refresh the dataset card."""
    facts = collect(output)
    plots = report_page.plots(facts)
    page = report_page.render(facts, plots)
    fs, root = write.output_fs(output)
    base = f"{root}/{layout.REPORT_DIR}"
    where = f"{output.rstrip('/')}/{layout.REPORT_DIR}"
    names = []
    for name, png in plots.items():
        write.write_bytes(fs, f"{base}/{name}.png", png)
        names.append(f"{where}/{name}.png")
    write.write_bytes(fs, f"{base}/index.html", page.encode())
    card.write_card(output)
    return Report(f"{where}/index.html", names)
