"""What `mga-spark evaluate` writes: evaluation.json (the contract), evaluation.md (opening with
the verdict) and evaluation.html (the plots, self-contained; plots need the `report` extra).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

JSON, MARKDOWN, PAGE = "evaluation.json", "evaluation.md", "evaluation.html"
VARIANTS = "variants.jsonl"  # the accepted variants with their sources
CALIBRATION = "calibration.json"  # the judge's figures, written as soon as they exist
# reject reason -> the settings to look at
SETTINGS = {
    "judge_failed": "judge.threshold, judge.mode, or a stronger judge model",
    "judge_not_json": "judge.structured_output, judge.max_tokens",
    "judge_invalid": "judge.structured_output, judge.mode",
    "judge_truncated": "judge.max_tokens, judge.max_analysis_chars",
    "low_keyword_coverage": "clean.min_keyword_coverage (or the rewrite prompt)",
    "near_copy": "clean.max_copy_similarity, rewrite.mode (strict copies more)",
    "prompt_echo": "the rewrite prompt (prompt version) or a stronger model",
    "wrong_language": "clean.check_language, rewrite.output_language",
    "near_duplicate_variant": "clean.max_sibling_similarity, ga.temperature",
    "rewrite_truncated": "rewrite.max_tokens, chunking.max_tokens",
    "rewrite_empty": "the rewrite prompt or the model",
    "empty_after_cleaning": "clean.min_chars, clean.strip_boilerplate",
    "ga_truncated": "ga.max_tokens, ga.max_description_chars",
    "ga_not_json": "ga.structured_output, ga.max_tokens",
    "ga_invalid": "ga.structured_output",
    "ga_too_few_pairs": "ga.num_pairs, ga.structured_output",
    "ga_duplicate_pair": "ga.temperature",
    "ga_visual_format": "the GA prompt",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def verdict_lines(r: dict) -> list[str]:
    j, rw, ga, fid = r["judge"], r["rewrite"], r["ga"], r["fidelity"]
    lines = []
    per_doc = (rw["accepted"] / r["documents"]) if r["documents"] else 0
    lines.append(f"- **Expected acceptance: {_pct(rw['accepted_share'])}** of the rewrite slots "
                 f"({rw['accepted']} of {rw['pair_slots']}; {per_doc:.1f} variants per document "
                 f"where {r['settings']['ga.num_pairs']} are asked for).")
    if rw["rejects"]:
        reason, n = next(iter(rw["rejects"].items()))
        share = n / rw["pair_slots"] if rw["pair_slots"] else 0
        lines.append(f"- **The filter that rejects most: `{reason}`** ({n} slots, {share:.0%}); "
                     f"look at {SETTINGS.get(reason, 'the rejects table')}.")
    ba = j["balanced_accuracy"]
    if j["verdict"] == "at chance":
        lines.append(f"- **The judge is AT CHANCE** (balanced accuracy {_num(ba)} ± "
                     f"{_num(j['standard_error'])} on {j['calibration_items']} calibration "
                     f"items): {j['meaning']}. Do not rely on it; disable it "
                     "(judge.enabled=false) or use a stronger judge model.")
    else:
        lines.append(f"- **The judge {j['verdict']}** (balanced accuracy {_num(ba)} ± "
                     f"{_num(j['standard_error'])} on {j['calibration_items']} items, threshold "
                     f"{j['threshold']}): {j['meaning']}.")
    lines.append(f"- GA pairs valid: {_pct(ga['valid_share'])} of the slots; "
                 f"{ga['distinct_genres']} distinct genres, {ga['distinct_audiences']} distinct "
                 "audiences.")
    lines.append(f"- Fidelity (numbers and names kept, independent of the judge): "
                 f"{_pct(fid['kept_share'])} over the accepted variants; length ratio "
                 f"{_num(r['length']['mean_ratio'])} (the paper's ~0.8).")
    return lines


def markdown(r: dict) -> str:
    j, rw, t = r["judge"], r["rewrite"], r["throughput"]
    out = [f"# Evaluation of {r['model']}", "", *verdict_lines(r), "",
           f"Config {r['config']}, prompt version {r['prompt_version']}, split {r['split']}, "
           f"{r['documents']} documents, {j['calibration_items']} calibration items; "
           f"wall time {r['seconds']['total']:.0f} s.", "",
           "## Judge calibration", "",
           "| kind | label | items | pass share | unreadable |", "|---|---|---:|---:|---:|"]
    for kind, k in j["by_kind"].items():
        label = "faithful" if k["faithful"] else "unfaithful"
        out.append(f"| {kind} | {label} | {k['n']} | {_pct(k['pass_share'])} | "
                   f"{k['unreadable']} |")
    out += ["", f"Pass share on faithful items {_pct(j['faithful_pass_share'])}, fail share on "
            f"unfaithful items {_pct(j['unfaithful_fail_share'])}. Scores: "
            f"faithful {j['scores'].get('faithful', {})}, unfaithful "
            f"{j['scores'].get('unfaithful', {})}.", "", "## Rewrites by outcome", "",
            "| reason | slots | settings |", "|---|---:|---|",
            f"| accepted | {rw['accepted']} | |"]
    out += [f"| {reason} | {n} | {SETTINGS.get(reason, '')} |"
            for reason, n in rw["rejects"].items()]
    out += ["", "Examples:", ""]
    for reason, shown in rw["examples"].items():
        for e in shown:
            text = " ".join(e["output"].split())[:200]
            out.append(f"- `{reason}` ({e['source_id']}): {e['detail'][:160]}"
                       + (f" | output: {text}" if text else ""))
    fid = r["fidelity"]
    out += ["", "## Fidelity, length, throughput", "",
            f"- fidelity kept share {_pct(fid['kept_share'])} by language "
            f"{ {k: round(v, 3) for k, v in fid['by_language'].items()} }; on the calibration "
            f"set: {fid['calibration']}",
            f"- length ratio (output / input tokens) {_num(r['length']['mean_ratio'])}",
            f"- output {_num(t['output_tok_s'], '.1f')} tok/s ({t['output_tokens']} tokens in "
            f"{t['seconds']} s, stages run), prefix cache hits "
            f"{_pct(t['prefix_cache_hit_share'])}; calibration "
            f"{_num(r['calibration_throughput']['output_tok_s'], '.1f')} tok/s", ""]
    return "\n".join(out)


def _plots(r: dict, shares: list[float]) -> list[tuple[str, bytes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    j = r["judge"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    kinds = list(j["by_kind"])
    ax.bar(kinds, [j["by_kind"][k]["pass_share"] or 0 for k in kinds],
           color=["#4a4" if j["by_kind"][k]["faithful"] else "#c44" for k in kinds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("judge pass share")
    ax.set_title(f"judge by kind (balanced accuracy {_num(j['balanced_accuracy'])}, "
                 f"{j['verdict']})")
    ax.tick_params(axis="x", rotation=30)
    out.append(("Judge pass share by kind (green: faithful)", _png(fig, plt)))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    keys = ["1", "2", "3", "4", "5", "none"]
    for offset, label in ((-0.2, "faithful"), (0.2, "unfaithful")):
        counts = j["scores"].get(label, {})
        ax.bar([i + offset for i in range(len(keys))], [counts.get(k, 0) for k in keys], 0.4,
               label=label)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel("judge score")
    ax.legend()
    out.append(("Judge score distribution", _png(fig, plt)))
    rejects = r["rewrite"]["rejects"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.barh(["accepted", *rejects], [r["rewrite"]["accepted"], *rejects.values()])
    ax.invert_yaxis()
    ax.set_xlabel("pair slots")
    out.append(("Rewrites by outcome", _png(fig, plt)))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    a1.hist(shares, bins=10, range=(0, 1))
    a1.set_xlabel("fidelity kept share per variant")
    a2.hist(r["length"]["ratios"], bins=12)
    a2.axvline(0.8, color="k", linestyle="--")
    a2.set_xlabel("length ratio (paper ~0.8)")
    out.append(("Fidelity and length of the accepted variants", _png(fig, plt)))
    return out


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def page(r: dict, shares: list[float]) -> str:
    try:
        plots = _plots(r, shares)
        missing = ""
    except ImportError:
        plots, missing = [], "<p>Plots need matplotlib: pip install 'mga-spark[report]'.</p>"
    body = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' "
                   f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                   for t, png in plots)
    verdict = "".join(f"<li>{html.escape(line[2:].replace('**', ''))}</li>"
                      for line in verdict_lines(r))
    return (f"<!doctype html><meta charset='utf-8'><title>evaluation</title>"
            f"<body style='font:14px system-ui;max-width:900px;margin:auto'>"
            f"<h1>Evaluation of {html.escape(r['model'])}</h1><ul>{verdict}</ul>{missing}"
            f"{body}<h2>evaluation.json</h2><pre>{html.escape(json.dumps(r, indent=1))}</pre>")


def write_calibration(out_dir: Path, judge: dict) -> None:
    """The judge's figures before the (longer) stages run: kept if that run does not finish."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CALIBRATION).write_text(json.dumps({"judge": judge}, indent=2) + "\n", "utf-8")


def write(out_dir: Path, r: dict, shares: list[float]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON).write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out_dir / MARKDOWN).write_text(markdown(r), "utf-8")
    (out_dir / PAGE).write_text(page(r, shares), "utf-8")


def write_variants(out_dir: Path, variants: list, sources: dict[str, str]) -> None:
    """DIR/variants.jsonl: every accepted variant as it came out, next to its source document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ("source_id", "chunk_index", "pair_index", "genre", "audience", "judge_score",
            "fidelity", "language", "text")
    with open(out_dir / VARIANTS, "w", encoding="utf-8") as f:
        for v in variants:
            row = {k: getattr(v, k) for k in keys} | {"source": sources.get(v.source_id)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
