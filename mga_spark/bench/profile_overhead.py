"""The non-model overhead on a real model's tokenizer, measured and profiled (cProfile).

    python -m mga_spark.bench.profile_overhead --config CONF [--documents 1000] [--top 25]

Runs the bench's unit path (`overhead.unit_path`: production cleaning, the model's tokenizer for
token counts and for rendering and encoding every prompt) on the bench's varied documents, once
untimed, once timed, once under cProfile; prints documents per CPU-second, the top functions by
own time, and what encoding each chunk's shared prefix once would save (`prefix_saving`: the
prompts of one unit encoded whole vs the prefix once per chunk plus each prompt's rest).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

from mga_spark.bench import overhead as bench_overhead
from mga_spark.engine.base import Request

CUT = "</document>\n"  # "</document>\n\n" splits the SmolLM2 tokenizer's "\n\n" token


def prefix_saving(tokenizer, requests: list[Request]) -> dict:
    """CPU seconds to encode the rendered prompts whole, vs the shared prefix (up to the end of
    the document block) once per distinct prefix plus each prompt's remainder; and whether the
    ids are the same."""
    prompts = [tokenizer.apply_chat_template(r.messages, tokenize=False,
                                             add_generation_prompt=True) for r in requests]
    started = time.process_time()
    whole = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    t_whole = time.process_time() - started
    started = time.process_time()
    cache: dict[tuple, list[int]] = {}
    split = []
    for r, p in zip(requests, prompts, strict=True):
        cut = p.find(CUT)
        if cut < 0:
            split.append(tokenizer.encode(p, add_special_tokens=False))
            continue
        head, tail = p[:cut + len(CUT)], p[cut + len(CUT):]
        key = (*r.id.split("\x1f")[-4:-2], head)  # once per chunk (document, chunk)
        if key not in cache:
            cache[key] = tokenizer.encode(head, add_special_tokens=False)
        split.append(cache[key] + tokenizer.encode(tail, add_special_tokens=False))
    t_split = time.process_time() - started
    same = sum(a == b for a, b in zip(whole, split, strict=True))
    return {"prompts": len(prompts), "chunks": len(cache),
            "encode_whole_cpu_s": round(t_whole, 3), "encode_prefix_once_cpu_s": round(t_split, 3),
            "identical_ids": f"{same}/{len(prompts)}"}


class KeepRequests(bench_overhead.InstantEngine):
    """An InstantEngine that keeps the requests it is sent (for `prefix_saving`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Request] = []

    def submit(self, request: Request) -> None:
        self.sent.append(request)
        super().submit(request)


def main(argv: list[str] | None = None) -> None:
    from mga_spark.bench.run import model_tokenizer, varied_documents
    from mga_spark.config import load_config

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    tokenizer = model_tokenizer(cfg)
    corpus = bench_overhead.corpus_of(varied_documents(48, 0), args.documents)
    label = "production cleaning + model tokenizer"
    bench_overhead.unit_path(cfg, corpus[:50], "warm-up", tokenizer)
    timed = bench_overhead.unit_path(cfg, corpus, label, tokenizer)
    print(json.dumps(timed))
    profiler = cProfile.Profile()
    profiler.enable()
    bench_overhead.unit_path(cfg, corpus, label + " (cProfile on)", tokenizer)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    keep = KeepRequests(cfg.ga.num_pairs, tokenizer)
    from mga_spark.core.pipeline import Pipeline
    from mga_spark.prompts import load_prompts

    list(Pipeline(cfg, keep, load_prompts()).run(corpus[:200]))  # prefixes keyed per chunk
    print(json.dumps({"prefix_saving_200_documents": prefix_saving(tokenizer, keep.sent)}))


if __name__ == "__main__":
    main()
