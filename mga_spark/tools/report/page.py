"""The report's plots (matplotlib, PNG bytes) and its self-contained HTML page: the page's
tables and sections are data here, laid out by the Jinja2 template templates/report.html
(autoescaped: every value from the output is escaped)."""

from __future__ import annotations

import base64
import io as bytes_io
import time
import warnings
from collections.abc import Callable

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from mga_spark.tools.report.facts import BINS, PAPER_EXPANSION, QUALITY, Facts, Hist

# Element ids on the page, one per plot and table: the browser test looks for each.
PLOTS = ("judge_scores", "rejects", "tokens", "genres", "audiences", "pairs_per_document",
         "throughput", "quality")
TABLES = ("summary", "judge", "rejects", "genres", "audiences", "pairs_per_document", "units",
          "quality")
MAX_TABLE_ROWS = 50
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Droid Sans Fallback")
WIDE, TALL = (8, 3.6), (8, 5)
DPI = 80


# -- plots ---------------------------------------------------------------------------------------


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = bytes_io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _empty(ax, what: str = "no data") -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#888")


def _judge(plt, f: Facts) -> bytes:
    fig, ax = plt.subplots(figsize=WIDE)
    scores = range(1, 6)
    kept = [f.scores_accepted.get(s, 0) for s in scores]
    failed = [f.scores_failed.get(s, 0) for s in scores]
    ax.bar(scores, kept, label="accepted", color="#4c9a6a")
    ax.bar(scores, failed, bottom=kept, label="below the threshold", color="#d08770")
    ax.set(xlabel="judge score (limited consistency)", ylabel="rewrites",
           title="Judge score distribution")
    ax.legend()
    if not any(kept) and not any(failed):
        _empty(ax, "no judge scores (judge off or no rewrite reached it)")
    return _png(fig)


def _hbar(plt, labels: list[str], values: list[int], title: str, xlabel: str) -> bytes:
    fig, ax = plt.subplots(figsize=(8, max(2.4, 0.32 * len(labels) + 1)))
    if labels:
        ax.barh(range(len(labels)), values, color="#5e81ac")
        ax.set_yticks(range(len(labels)), [_label(lbl) for lbl in labels])
        ax.invert_yaxis()
    else:
        _empty(ax)
    ax.set(title=title, xlabel=xlabel)
    return _png(fig)


def _tokens(plt, f: Facts) -> bytes:
    fig, ax = plt.subplots(figsize=TALL)
    xs, ys = f.doc_tokens
    ratio = f.summary.get("expansion")
    if xs:
        ax.scatter(xs, ys, s=14, alpha=0.6, color="#5e81ac", label="documents")
        top = max(xs) * 1.05
        ax.plot([0, top], [0, PAPER_EXPANSION * top], "--", color="#999",
                label=f"paper: {PAPER_EXPANSION}x")
        if ratio:
            ax.plot([0, top], [0, ratio * top], color="#bf616a", label=f"this run: {ratio:.2f}x")
        ax.legend()
    else:
        _empty(ax)
    ax.set(xlabel="source tokens per document", ylabel="accepted reformulation tokens",
           title="Input vs output tokens per document")
    return _png(fig)


def _pairs_per_doc(plt, f: Facts) -> bytes:
    fig, ax = plt.subplots(figsize=WIDE)
    if f.pairs_per_doc:
        keys = sorted(f.pairs_per_doc)
        ax.bar(keys, [f.pairs_per_doc[k] for k in keys], color="#88c0d0")
        ax.set_xticks(keys)
    else:
        _empty(ax)
    ax.set(xlabel="distinct genre-audience pairs among a document's accepted variants",
           ylabel="documents", title="Distinct pairs per document")
    return _png(fig)


def _throughput(plt, f: Facts) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if f.units:
        t0 = min(u["started"] for u in f.units)
        starts = [(u["started"] - t0) / 60 for u in f.units]
        ends = [s + u["seconds"] / 60 for s, u in zip(starts, f.units, strict=True)]
        rates = [u["output_tokens"] / u["seconds"] if u["seconds"] else 0 for u in f.units]
        left.hlines(range(len(f.units)), starts, ends, lw=6, color="#5e81ac")
        left.set(xlabel="minutes since the first unit started", ylabel="unit (by start)",
                 title="Units over time")
        order = sorted(range(len(ends)), key=ends.__getitem__)
        right.plot([ends[i] for i in order], [rates[i] for i in order], "o-", color="#bf616a")
        right.set(xlabel="minutes (unit end)", ylabel="generated tokens / s",
                  title="Throughput per unit")
    else:
        _empty(left)
        _empty(right)
    return _png(fig)


def _quality(plt, f: Facts) -> bytes:
    fig, axes = plt.subplots(1, len(QUALITY), figsize=(11, 3.4))
    for ax, name in zip(axes, QUALITY, strict=True):
        h = f.quality.get(name)
        if h is not None and h.n:
            centers = (np.arange(BINS) + 0.5) / BINS
            ax.hist(centers, bins=20, range=(0, 1), weights=h.counts, color="#a3be8c")
        else:
            _empty(ax)
        ax.set(title=name, xlabel="0 - 1", ylabel="variants")
    return _png(fig)


def _fonts(matplotlib) -> None:
    """DejaVu Sans, falling back to an installed CJK font for Chinese labels if there is one."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *(f for f in CJK_FONTS if f in have)]


def _label(text: object, width: int = 48) -> str:
    """A plot label: control characters dropped, at most `width` characters."""
    clean = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def plots(f: Facts) -> dict[str, bytes]:
    try:
        import matplotlib
    except ModuleNotFoundError as e:  # matplotlib is the `report` extra, not a base dependency
        raise ModuleNotFoundError("mga-spark report draws its plots with matplotlib, which is "
                                  "not installed: pip install 'mga-spark[report]'",
                                  name="matplotlib") from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _fonts(matplotlib)
    with warnings.catch_warnings():  # a glyph no installed font has is drawn as a box
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        return _plots(plt, f)


def _plots(plt, f: Facts) -> dict[str, bytes]:

    makers: dict[str, Callable[[], bytes]] = {
        "judge_scores": lambda: _judge(plt, f),
        "rejects": lambda: _hbar(plt, [f"{s} / {r}" for s, r, _ in f.rejects],
                                 [n for _, _, n in f.rejects], "Rejects by stage and reason",
                                 "slots or documents"),
        "tokens": lambda: _tokens(plt, f),
        "genres": lambda: _hbar(plt, [g for g, _ in f.genres], [n for _, n in f.genres],
                                f"Most frequent genres (top {len(f.genres)})", "variants"),
        "audiences": lambda: _hbar(plt, [a for a, _ in f.audiences],
                                   [n for _, n in f.audiences],
                                   f"Most frequent audiences (top {len(f.audiences)})",
                                   "variants"),
        "pairs_per_document": lambda: _pairs_per_doc(plt, f),
        "throughput": lambda: _throughput(plt, f),
        "quality": lambda: _quality(plt, f),
    }
    return {name: makers[name]() for name in PLOTS}


# -- page ----------------------------------------------------------------------------------------


def _cell(v: object) -> tuple[str, bool]:
    """A table cell's text, and whether it is a number (right-aligned)."""
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip("."), True
    return (f"{v:,}" if isinstance(v, int) else str(v)), isinstance(v, int)


def _table(name: str, head: list[str], rows: list[list], caption: str = "") -> dict:
    shown = rows[:MAX_TABLE_ROWS]
    if len(rows) > len(shown):
        caption = f"first {len(shown)} of {len(rows):,} rows. {caption}"
    return {"name": name, "head": head, "rows": [[_cell(v) for v in r] for r in shown],
            "caption": caption}


def _quantiles(h: Hist | None) -> list:
    """n, min, p10, median, p90, max, mean (the quantiles exact to 1/BINS, from the histogram)."""
    if h is None or not h.n:
        return [0, "-", "-", "-", "-", "-", "-"]
    return [h.n, round(h.low, 4), h.quantile(0.1), h.quantile(0.5), h.quantile(0.9),
            round(h.high, 4), round(h.total / h.n, 4)]


def _tables(f: Facts) -> dict[str, dict]:
    s = f.summary
    slots = s["pair_slots"] or 0
    rate = s["generated_tokens"] / s["seconds"] if s["seconds"] else 0.0
    summary = [["source documents", s["documents"]], ["chunks", s["chunks"]],
               ["pair slots", slots], ["accepted reformulations", s["variants"]],
               ["acceptance", f"{s['acceptance']:.1%}" if s["acceptance"] is not None else "-"],
               ["rejected", s["rejected"]], ["originals", s["originals"]],
               ["source tokens", s["input_tokens"]], ["reformulation tokens", s["variant_tokens"]],
               ["expansion", f"{s['expansion']:.2f}x" if s["expansion"] else "-"],
               ["paper's expansion", f"{PAPER_EXPANSION}x"],
               ["generated tokens (all stages)", s["generated_tokens"]],
               ["units", s["units"]], ["task seconds", round(s["seconds"], 1)],
               ["generated tokens / task second", round(rate, 1)]]
    units = [[u["unit"], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(u["started"])),
              round(u["seconds"], 1), u["documents"], u["accepted"], u["output_tokens"],
              round(u["output_tokens"] / u["seconds"], 1) if u["seconds"] else 0.0]
             for u in f.units]
    return {
        "summary": _table("summary", ["", "value"], summary,
                          "expansion: accepted reformulation tokens / tokens of every document "
                          "that reached the GA stage"),
        "judge": _table("judge", ["score", "accepted", "below the threshold"],
                        [[k, f.scores_accepted.get(k, 0), f.scores_failed.get(k, 0)]
                         for k in range(1, 6)]),
        "rejects": _table("rejects", ["stage", "reason", "count", "share of slots"],
                          [[st, r, n, f"{n / slots:.1%}" if slots and st != "input" else "-"]
                           for st, r, n in f.rejects]),
        "genres": _table("genres", ["genre", "variants"], [list(g) for g in f.genres]),
        "audiences": _table("audiences", ["audience", "variants"],
                            [list(a) for a in f.audiences]),
        "pairs_per_document": _table("pairs_per_document", ["distinct pairs", "documents"],
                                     [[k, f.pairs_per_doc[k]] for k in sorted(f.pairs_per_doc)]),
        "units": _table("units", ["unit", "started (UTC)", "seconds", "documents", "accepted",
                                  "generated tokens", "tokens / s"], units,
                        f"an evenly spaced sample of {len(f.units):,} of {f.units_total:,} units"
                        if len(f.units) < f.units_total else ""),
        "quality": _table("quality", ["signal", "variants", "min", "p10", "median", "p90", "max",
                                      "mean"], [[q, *_quantiles(f.quality.get(q))]
                                                for q in QUALITY]),
    }


SECTIONS = [  # (title, plots, tables, note)
    ("Summary", [], ["summary"], ""),
    ("Judge scores", ["judge_scores"], ["judge"],
     "Accepted rewrites and rewrites the judge scored below the threshold."),
    ("Rejects", ["rejects"], ["rejects"],
     "Input rejects count documents; GA rejects without a pair count whole chunks; the rest "
     "count pair slots."),
    ("Tokens", ["tokens"], [], "One point per document with a row in data/ (the first 2,000 "
     "such documents in unit order when there are more)."),
    ("Genres and audiences", ["genres", "audiences", "pairs_per_document"],
     ["genres", "audiences", "pairs_per_document"], ""),
    ("Throughput", ["throughput"], ["units"], "From the unit manifests: start, duration and "
     "tokens generated in all three stages."),
    ("Quality signals", ["quality"], ["quality"],
     "keyword_coverage: share of the source's top keywords in the variant. novelty: 1 - share "
     "of the variant's word 5-grams found in the source. max_sibling_similarity: the highest "
     "word-shingle Jaccard to another kept variant of the same chunk."),
]


_TEMPLATES = Environment(loader=PackageLoader("mga_spark.tools.report", "templates"),
                         autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)


def render(f: Facts, pngs: dict[str, bytes]) -> str:
    rec = f.record
    sections = [{"title": title, "slug": title.lower().replace(" ", "-"), "note": note,
                 "plots": plot_names, "tables": table_names}
                for title, plot_names, table_names, note in SECTIONS]
    return _TEMPLATES.get_template("report.html").render(
        output=f.output, model=str((rec.get("model") or {}).get("model")),
        prompt_version=str(rec.get("prompt_version")), fingerprint=str(rec.get("fingerprint")),
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), sections=sections,
        tables=_tables(f), pngs={name: base64.b64encode(png).decode()
                                 for name, png in pngs.items()})
