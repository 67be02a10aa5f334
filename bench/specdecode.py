"""Prompt-lookup (n-gram) speculative decoding on rewrites: acceptance, speed-up, greedy outputs.

Rewrites copy spans of their source, which is in their prompt, so vLLM's n-gram proposer
(`speculative_config: {method: ngram}`: draft tokens looked up in the request's own prompt and
output, no draft model) may guess several tokens a step. This measures it on the config's model:
the same greedy rewrite requests (sample documents x fixed genre-audience pairs, all submitted at
once) through an engine without and with the proposer, in separate processes (one vLLM engine
per process), alternately (off, on, off, on: drift on a shared machine cancels to first order),
each engine with `--omp-threads` OpenMP threads (2: one engine on this machine's 2 cores).
It reports output tok/s of each run, the on/off ratio, vLLM's own draft and accepted token
counters, and how many greedy outputs are identical with the proposer on.

    python -m bench.specdecode --config conf/small.yaml --documents 8 \\
        --out bench/small/specdecode.json
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import child_env
from mga_spark.config import load_config
from mga_spark.engine.base import Request, run_all
from mga_spark.prompts import load_prompts
from mga_spark.redaction import redact_setting
from mga_spark.schema import Audience, GAPair, Genre
from mga_spark.tools.demo import sample_records

log = logging.getLogger(__name__)
PAIRS = (  # fixed pairs: the experiment is about decoding, not about GA answers
    ("Bedtime story", "A short story read aloud", "Young children", "Ages 5-8, listening"),
    ("Textbook section", "A structured explanation", "High-school students", "First exposure"),
    ("FAQ", "Questions and short answers", "Busy professionals", "Skimming for facts"),
    ("Blog post", "An informal first-person post", "Hobbyists", "Curious, not experts"),
    ("Lecture notes", "Terse notes with headings", "Undergraduates", "Revising for an exam"),
)
SPEC_COUNTERS = {
    "vllm:spec_decode_num_drafts": "drafts",
    "vllm:spec_decode_num_draft_tokens": "draft_tokens",
    "vllm:spec_decode_num_accepted_tokens": "accepted_tokens",
    "vllm:generation_tokens": "generation_tokens",
}


def ngram_config(tokens: int = 4, lookup_max: int = 4, lookup_min: int = 2) -> dict:
    return {"method": "ngram", "num_speculative_tokens": tokens,
            "prompt_lookup_max": lookup_max, "prompt_lookup_min": lookup_min}


def rewrite_requests(config: Path, documents: int, overrides: Sequence[str] = ()) -> list[Request]:
    """Greedy rewrite requests: `documents` English sample texts x the 5 fixed pairs."""
    cfg = load_config(config, list(overrides))
    prompts = load_prompts()
    texts = [r["text"] for r in sample_records() if r["lang"] == "en"][:documents]
    pairs = [GAPair(genre=Genre(title=g, description=gd), audience=Audience(title=a,
                                                                           description=ad))
             for g, gd, a, ad in PAIRS]
    return [Request(f"{i:03d}-{j}", prompts.rewrite_messages(text, pair, "en", cfg.rewrite.mode,
                                                             "en"),
                    cfg.rewrite.max_tokens, temperature=0.0, top_p=1.0)
            for i, text in enumerate(texts) for j, pair in enumerate(pairs)]


def child(config: Path, overrides: list[str], requests_file: Path, speculative: dict | None,
          out: Path) -> None:
    """One engine, all requests at once, drained; texts and counters to `out`."""
    from mga_spark.engine.vllm import VLLMEngine, counters

    cfg = load_config(config, overrides)
    args = dict(cfg.model.engine_args)
    if speculative:
        args["speculative_config"] = speculative
    engine = VLLMEngine(args, cfg.model.device)
    requests = [Request(**r) for r in json.loads(requests_file.read_text())]
    llm = engine._get_llm()  # built before the clock starts
    before = counters(llm, SPEC_COUNTERS)
    started = time.perf_counter()
    done = run_all(engine, requests)
    seconds = time.perf_counter() - started
    after = counters(llm, SPEC_COUNTERS)
    engine.shutdown()
    delta = {k: after[k] - before[k] for k in after}
    out.write_text(json.dumps({
        "speculative_config": speculative, "seconds": round(seconds, 2), "counters": delta,
        "output_tok_s": round(delta["generation_tokens"] / seconds, 2),
        "outputs": {rid: {"text": c.text, "tokens": c.output_tokens, "finish": c.finish_reason}
                    for rid, c in done.items()}}))


def compare(off: dict, on: dict) -> dict:
    """Identical greedy outputs, and where the others first differ (characters)."""
    same, firsts = 0, []
    for rid, a in off["outputs"].items():
        b = on["outputs"].get(rid, {}).get("text")
        if b == a["text"]:
            same += 1
        else:
            b = b or ""
            firsts.append(next((i for i, (x, y) in enumerate(zip(a["text"], b, strict=False))
                                if x != y), min(len(a["text"]), len(b))))
    return {"requests": len(off["outputs"]), "identical": same,
            "first_difference_chars": sorted(firsts)}


def run(config: Path, documents: int, rounds: int, speculative: dict,
        overrides: Sequence[str] = (), omp_threads: int = 2) -> dict:
    requests = rewrite_requests(config, documents, overrides)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mga-specdecode-") as tmp:
        req_file = Path(tmp) / "requests.json"
        req_file.write_text(json.dumps([r.__dict__ for r in requests]))
        for r in range(rounds):
            for variant in ("off", "on"):
                out = Path(tmp) / f"{variant}-{r}.json"
                cmd = [sys.executable, "-m", "bench.specdecode", "--config",
                       str(config), "--child", str(req_file), "--child-out", str(out),
                       *(f"--set={o}" for o in overrides)]
                if variant == "on":
                    cmd += ["--speculative", json.dumps(speculative)]
                log.info("round %d, speculative decoding %s", r + 1, variant)
                env = child_env(OMP_NUM_THREADS=str(omp_threads))
                subprocess.run(cmd, check=True, env=env)
                runs.append({"variant": variant, "round": r + 1, **json.loads(out.read_text())})
    return {**summary(runs, config, documents, len(requests)),
            "overrides": [redact_setting(o) for o in overrides], "OMP_NUM_THREADS": omp_threads}


def summary(runs: list[dict], config: Path, documents: int, requests: int) -> dict:
    offs = [r for r in runs if r["variant"] == "off"]
    ons = [r for r in runs if r["variant"] == "on"]
    ratios = [b["output_tok_s"] / a["output_tok_s"] for a, b in zip(offs, ons, strict=True)]
    c = ons[0]["counters"]
    return {
        "what": "greedy rewrites without and with n-gram speculative decoding, alternately",
        "config": str(config), "documents": documents, "requests": requests,
        "speculative_config": ons[0]["speculative_config"],
        "runs": [{k: r[k] for k in ("variant", "round", "seconds", "output_tok_s", "counters")}
                 for r in runs],
        "on_over_off_output_tok_s": [round(x, 3) for x in ratios],
        "acceptance_rate": round(c["accepted_tokens"] / c["draft_tokens"], 3)
        if c["draft_tokens"] else None,
        "accepted_tokens_per_draft": round(c["accepted_tokens"] / c["drafts"], 2)
        if c["drafts"] else None,
        "greedy_off_vs_off": compare(offs[0], offs[-1]) if len(offs) > 1 else None,
        "greedy_off_vs_on": compare(offs[0], ons[0]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=Path("conf/small.yaml"))
    p.add_argument("--documents", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tokens", type=int, default=4, help="num_speculative_tokens")
    p.add_argument("--omp-threads", type=int, default=2, help="OMP_NUM_THREADS per engine")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override (repeatable)")
    p.add_argument("--out", type=Path)
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--speculative", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.child:
        child(a.config, a.set, a.child, json.loads(a.speculative) if a.speculative else None,
              a.child_out)
        return 0
    result = run(a.config, a.documents, a.rounds, ngram_config(a.tokens), a.set, a.omp_threads)
    text = json.dumps(result, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
