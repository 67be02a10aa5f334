"""The judge's calibration figures and the verdicts drawn from them (pure functions).

Balanced accuracy is the mean of the pass rate on faithful items and the fail rate on unfaithful
ones: 0.5 for a judge that passes (or fails) everything, or scores at random, whatever the mix of
items. Whether a judge discriminates is decided against chance with the figure's own error:
a balanced accuracy within two standard errors of 0.5 is "at chance".
"""

from __future__ import annotations

import math
from collections import Counter

from mga_spark.tools.evaluate.calibrate import Judged

DISCRIMINATES = 0.8  # a balanced accuracy from here on: the judge separates the kinds well
# verdict -> what it means for a run
JUDGE_VERDICTS = {
    "discriminates": "the judge tells faithful rewrites from broken ones",
    "weak": "the judge does better than chance but lets many broken rewrites through or rejects "
            "many faithful ones",
    "at chance": "the judge's verdicts say nothing about faithfulness: as a filter it only "
                 "removes rewrites at random",
    "inverted": "the judge prefers broken rewrites to faithful ones",
    "no items": "no calibration item was judged",
}


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def balanced_accuracy(judged: list[Judged]) -> tuple[float | None, float | None]:
    """(balanced accuracy, its standard error); None when either label has no item."""
    good = [j for j in judged if j.item.faithful]
    bad = [j for j in judged if not j.item.faithful]
    if not good or not bad:
        return None, None
    tpr = sum(j.passed for j in good) / len(good)
    tnr = sum(not j.passed for j in bad) / len(bad)
    # rates pulled towards 1/2 by one pseudo-item each, so that 0/n or n/n still has an error
    p = (sum(j.passed for j in good) + 0.5) / (len(good) + 1)
    q = (sum(not j.passed for j in bad) + 0.5) / (len(bad) + 1)
    se = 0.5 * math.sqrt(p * (1 - p) / len(good) + q * (1 - q) / len(bad))
    return (tpr + tnr) / 2, se


def judge_verdict(ba: float | None, se: float | None) -> str:
    if ba is None or se is None:
        return "no items"
    if abs(ba - 0.5) <= 2 * se:
        return "at chance"
    if ba < 0.5:
        return "inverted"
    return "discriminates" if ba >= DISCRIMINATES else "weak"


def judge_summary(judged: list[Judged], threshold: int) -> dict:
    ba, se = balanced_accuracy(judged)
    kinds: dict[str, list[Judged]] = {}
    for j in judged:
        kinds.setdefault(j.item.kind, []).append(j)
    by_kind = {kind: {"n": len(js), "faithful": js[0].item.faithful,
                      "pass_share": _share(sum(j.passed for j in js), len(js)),
                      "unreadable": sum(j.score is None for j in js)}
               for kind, js in kinds.items()}
    good = [j for j in judged if j.item.faithful]
    bad = [j for j in judged if not j.item.faithful]
    scores: dict[str, dict[str, int]] = {}
    for label, js in (("faithful", good), ("unfaithful", bad)):
        counts = Counter("none" if j.score is None else str(j.score) for j in js)
        scores[label] = {k: counts[k] for k in ("1", "2", "3", "4", "5", "none") if counts[k]}
    verdict = judge_verdict(ba, se)
    return {
        "balanced_accuracy": ba,
        "standard_error": se,
        "verdict": verdict,
        "meaning": JUDGE_VERDICTS[verdict],
        "calibration_items": len(judged),
        "faithful_pass_share": _share(sum(j.passed for j in good), len(good)),
        "unfaithful_fail_share": _share(sum(not j.passed for j in bad), len(bad)),
        "threshold": threshold,
        "by_kind": by_kind,
        "scores": scores,
        "unreadable_reasons": dict(Counter(j.reason for j in judged
                                           if j.score is None and j.reason).most_common()),
        "output_tokens": sum(j.output_tokens for j in judged),
    }


# --fail-under names -> (evaluation.json section, key)
GATES = {
    "judge": ("judge", "balanced_accuracy"),
    "acceptance": ("rewrite", "accepted_share"),
    "fidelity": ("fidelity", "kept_share"),
    "ga": ("ga", "valid_share"),
}


def parse_gates(specs: list[str]) -> dict[str, float]:
    """`judge=0.8` ... -> {"judge": 0.8}; a ValueError names what is wrong."""
    gates = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in GATES:
            raise ValueError(f"--fail-under {spec!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(GATES)}")
        try:
            gates[name] = float(value)
        except ValueError:
            raise ValueError(f"--fail-under {spec!r}: {value!r} is not a number") from None
    return gates


def missed(result: dict, gates: dict[str, float]) -> list[str]:
    """One line per gate the evaluation misses (a figure that could not be measured misses)."""
    out = []
    for name, bound in gates.items():
        section, key = GATES[name]
        value = result.get(section, {}).get(key)
        if value is None or value < bound:
            shown = "not measured" if value is None else f"{value:.3f}"
            out.append(f"{name}: {section}.{key} is {shown}, under --fail-under {name}={bound:g}")
    return out
