"""`mga-spark plan`: units, documents, input tokens and the output a run would produce.

Input tokens are counted with the model's own tokenizer on a sample of documents spread over the
units and extrapolated per document, or counted exactly with `--exact`. The projection multiplies
by the number of GA pairs and two assumptions stated in the output: the rewrite length relative
to its source (1.0) and the share of rewrites accepted (0.78: the paper's 3.9x from 5 rewrites).
"""

from __future__ import annotations

import itertools

from mga_spark.config import Config
from mga_spark.io.plan import make_plan
from mga_spark.io.read import read_unit

REWRITE_RATIO = 1.0
ACCEPTANCE = 0.78


def _tokenizer(cfg: Config):
    from transformers import AutoTokenizer

    args = cfg.model.engine_args
    return AutoTokenizer.from_pretrained(args.get("tokenizer") or args["model"],
                                         revision=args.get("revision"))


def estimate(cfg: Config, exact: bool = False, sample: int = 200) -> dict:
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    tok = _tokenizer(cfg)
    units = plan.units
    if not exact and units:
        step = max(1, len(units) // max(1, min(len(units), 20)))
        units = units[::step]
    per_unit = None if exact else max(1, sample // max(1, len(units)))
    counted = tokens = 0
    for unit in units:
        for doc in itertools.islice(read_unit(unit, cfg.input), per_unit):
            if doc.text:
                tokens += len(tok(doc.text, add_special_tokens=False)["input_ids"])
            counted += 1
    mean = tokens / counted if counted else 0.0
    input_tokens = round(mean * plan.documents)
    pairs = cfg.ga.num_pairs
    generated = round(input_tokens * pairs * REWRITE_RATIO)
    return {
        "files": plan.files,
        "bad_files": [vars(b) for b in plan.bad_files],
        "units": len(plan.units),
        "documents": plan.documents,
        "input_tokens": input_tokens,
        "input_tokens_method": "exact" if exact else f"sampled {counted} documents, extrapolated",
        "mean_tokens_per_document": round(mean, 1),
        "rewrite_tokens_generated": generated,
        "projected_output_tokens": round(generated * ACCEPTANCE),
        "projected_expansion": round(pairs * REWRITE_RATIO * ACCEPTANCE, 2),
        "assumptions": {"rewrite_length_ratio": REWRITE_RATIO, "acceptance": ACCEPTANCE,
                        "ga_pairs": pairs},
    }
