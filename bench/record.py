"""Request lengths recorded from one pipeline run on a real engine, for the scheduler simulation.

`record` runs our pipeline (`bodies.pipeline_body`) over the bench's varied documents and keeps,
per request, its stage, prompt tokens, output tokens and finish reason, grouped by document and
chunk, plus each chunk's source length in tokens (the text inside the `<document>` block of its
GA prompt). No text is kept: the file holds lengths only. `bench.sim` replays it.

    python -m bench.record --config CONF --documents 16 --out bench/recording.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from bench.phases import StepTracker, measure
from mga_spark.engine.base import Completion, Request
from mga_spark.redaction import redact_setting

log = logging.getLogger(__name__)
DOCUMENT = re.compile(r"<document>\n(.*?)\n</document>", re.S)


def _fields(request_id: str) -> tuple[str, str, str, str]:
    """(document, chunk, stage, pair) of a pipeline request id."""
    doc, chunk, stage, pair = request_id.split("\x1f")[-4:]
    return doc, chunk, stage, pair


def source_text(request: Request) -> str | None:
    """The document block of a request's prompt (its chunk's text), if it has one."""
    for m in request.messages:
        found = DOCUMENT.search(str(m.get("content", "")))
        if found:
            return found.group(1)
    return None


def recording(requests: Iterable[Request], completions: dict[str, Completion],
              count_tokens) -> list[dict]:
    """Documents -> chunks -> requests (lengths only), in the order the pipeline sent them."""
    docs: dict[str, dict[str, dict]] = {}
    for r in requests:
        c = completions.get(r.id)
        if c is None:
            continue
        doc, chunk, stage, pair = _fields(r.id)
        entry = docs.setdefault(doc, {}).setdefault(chunk, {"chunk": chunk, "source_tokens": None,
                                                            "requests": []})
        if stage == "ga" and entry["source_tokens"] is None:
            text = source_text(r)
            entry["source_tokens"] = count_tokens(text) if text is not None else None
        entry["requests"].append({"stage": stage, "pair": pair, "prompt_tokens": c.prompt_tokens,
                                  "output_tokens": c.output_tokens,
                                  "max_tokens": r.max_tokens, "finish_reason": c.finish_reason})
    return [{"document": d, "chunks": list(chunks.values())} for d, chunks in docs.items()]


def closed_documents(pipeline) -> set[str]:
    """Documents admitted whose every slot is closed (no request of theirs can follow)."""
    return set(pipeline.ledger.chunk_counts) - set(pipeline.ledger.open_documents)


def incremental_body(cfg, docs, write, every_s: float = 30.0):
    """The pipeline on `docs`; every `every_s` seconds (and at the end) `write(closed)` is called
    with the documents finished so far, so a run stopped early still leaves a recording."""
    from mga_spark.core.pipeline import Pipeline
    from mga_spark.prompts import load_prompts

    def body(engine) -> dict:
        pipeline = Pipeline(cfg, engine, load_prompts())
        last, rows = time.monotonic(), 0
        for _ in pipeline.run(docs):
            rows += 1
            if time.monotonic() - last > every_s:
                write(engine, closed_documents(pipeline))
                last = time.monotonic()
        write(engine, closed_documents(pipeline))
        counts = pipeline.stats.counts
        return {"rows": rows, "accepted": counts.get("accepted", 0),
                "rejected": counts.get("rejected", 0), "chunks": counts.get("chunks", 0)}

    return body


def header(cfg, config: Path, overrides: list[str], documents: int, seed: int,
           by: str = "bench.record") -> dict:
    """What a recording file says about the run it comes from."""
    return {"what": f"per-request lengths from one pipeline run ({by}); lengths only",
            "model": Path(str(cfg.model.engine_args["model"])).name, "config": str(config),
            "overrides": [redact_setting(o) for o in overrides], "documents_asked": documents,
            "seed": seed,
            "max_tokens": {"ga": cfg.ga.max_tokens, "rewrite": cfg.rewrite.max_tokens,
                           "judge": cfg.judge.max_tokens},
            "max_inflight_docs": cfg.pipeline.max_inflight_docs,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def record(config: Path, documents: int, seed: int = 0, overrides: list[str] | None = None,
           out_path: Path | None = None) -> dict:
    from bench.documents import varied_documents
    from mga_spark.config import load_config
    from mga_spark.engine.vllm import VLLMEngine

    cfg = load_config(config, overrides or [])
    engine = VLLMEngine(cfg.model.engine_args, cfg.model.device)
    tracker = StepTracker().install(engine._get_llm())
    docs = varied_documents(documents, seed)
    started = time.perf_counter()
    head = header(cfg, config, overrides or [], len(docs), seed)

    def write(recorder, closed: set[str]) -> None:
        if out_path is None:
            return
        kept = [d for d in recording(recorder.requests, recorder.completions,
                                     engine.count_tokens) if d["document"] in closed]
        partial = {**head, "documents": len(kept), "complete": False,
                   "seconds": round(time.perf_counter() - started, 1), "docs": kept}
        out_path.write_text(json.dumps(partial, indent=1) + "\n")
        log.info("recording: %d documents finished, written to %s", len(kept), out_path)

    result, recorder = measure("recording", engine, tracker, len(docs),
                               incremental_body(cfg, docs, write))
    tracker.remove()
    out = {**head, "documents": len(docs), "complete": True,
           "seconds": round(time.perf_counter() - started, 1),
           "output_tok_s": round(result.output_tps, 1), "engine_steps": result.engine_steps,
           "pipeline": {k: v for k, v in result.notes.items() if k in ("rows", "accepted",
                                                                         "rejected", "chunks")},
           "output_tokens_by_stage": result.notes["output_tokens_by_stage"],
           "docs": recording(recorder.requests, recorder.completions, engine.count_tokens)}
    engine.shutdown()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported
    logging.basicConfig(level=logging.INFO)
    out = record(args.config, args.documents, args.seed, args.overrides, args.out)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    log.info("written %s (%s s)", args.out, out["seconds"])


if __name__ == "__main__":
    main()
