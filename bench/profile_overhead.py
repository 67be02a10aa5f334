"""The non-model overhead on a real model's tokenizer, measured and profiled (cProfile).

    python -m bench.profile_overhead --config CONF [--documents 1000] [--top 25]

Runs the bench's unit path (`overhead.unit_path`: production cleaning, the model's tokenizer for
token counts and for rendering every prompt, encoded by the engine's own `PromptEncoder`) on the
bench's varied documents (`distinct_documents`: no chunk repeated across documents): once
untimed, then timed with every prompt encoded whole and with the document prefix encoded once
per chunk (the engine's default), in the order whole, prefix, prefix, whole in one process; once
under cProfile. Prints documents per CPU-second of each, the top functions by own time, and the
encoding CPU alone (`encoding_split`: the prompts of 200 documents encoded whole vs through the
prefix cache, and whether the ids are the same), and the least any engine fed text must encode
(`encoding_floor`: each chunk's document and each judged rewrite, once).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import overhead as bench_overhead
from bench.phases import doc_of
from bench.record import DOCUMENT
from mga_spark.engine.base import Request
from mga_spark.engine.prompt_ids import PromptEncoder
from mga_spark.schema import Document

ORDER = (False, True, True, False)  # prefix_ids of the timed runs: drift cancels out


def distinct_documents(n: int) -> list[Document]:
    """`n` of the bench's varied documents, every paragraph tagged with its document's number:
    as in a deduplicated corpus no chunk's text repeats across documents, so the prefix cache
    reuses a prefix only within its own chunk (`corpus_of` cycles 48 texts, whose repeats would
    hit the cache across documents and overstate the saving)."""
    from bench.documents import varied_documents

    def tagged(i: int, k: int, part: str) -> str:
        gap = " " if " " in part else ""  # Chinese text stays without spaces
        return f"({i}.{k}){gap}{part}{gap}({i}.{k})"

    return [Document(d.id, "\n\n".join(tagged(i, k, part)
                                        for k, part in enumerate(d.text.split("\n\n"))),
                     d.extra) for i, d in enumerate(varied_documents(n, 0))]


def rendered(tokenizer: Any, requests: list[Request]) -> list[str]:
    """The prompts as the engine renders them (chat template, generation prompt)."""
    return [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in requests]


def encoding_split(tokenizer: Any, requests: list[Request]) -> dict:
    """CPU seconds to encode the rendered prompts whole, vs through the engine's PromptEncoder
    (the prefix once per chunk plus each prompt's rest, verifications included); whether the
    ids are the same."""
    prompts = rendered(tokenizer, requests)
    out: dict[str, Any] = {"prompts": len(prompts)}
    ids = {}
    for name, enabled in (("whole", False), ("prefix_once", True)):
        encoder = PromptEncoder(tokenizer, enabled=enabled)
        started = time.process_time()
        ids[name] = [encoder.encode(p) for p in prompts]
        out[f"encode_{name}_cpu_s"] = round(time.process_time() - started, 3)
        out[f"{name}_stats"] = asdict(encoder.stats)
    same = sum(a == b for a, b in zip(ids["whole"], ids["prefix_once"], strict=True))
    out["identical_ids"] = f"{same}/{len(prompts)}"
    if out["encode_whole_cpu_s"]:
        out["encode_ratio"] = round(out["encode_prefix_once_cpu_s"] / out["encode_whole_cpu_s"], 3)
    return out


REWRITE = re.compile(r"<rewrite>\n(.*?)\n</rewrite>", re.S)


def encoding_floor(tokenizer: Any, requests: list[Request]) -> dict:
    """The text these prompts bring in for the first time, encoded once each: every chunk's
    document block and every judged rewrite (the task texts and chat template taken as free).
    What an engine given text must tokenize at the least; its CPU per document bounds the
    documents per CPU-second of any encoding scheme, next to the prompts' encoding through the
    engine's PromptEncoder."""
    texts = {found.group(1) for r in requests for m in r.messages
             for found in (DOCUMENT.search(str(m.get("content", ""))),
                           REWRITE.search(str(m.get("content", "")))) if found}
    documents = len({doc_of(r.id) for r in requests})
    started = time.process_time()
    tokens = sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    floor = time.process_time() - started
    encoder = PromptEncoder(tokenizer)
    prompts = rendered(tokenizer, requests)
    started = time.process_time()
    prompt_tokens = sum(len(encoder.encode(p)) for p in prompts)
    full = time.process_time() - started
    return {"documents": documents, "texts": len(texts), "text_tokens": tokens,
            "prompt_tokens": prompt_tokens,
            "floor_cpu_ms_per_document": round(1000 * floor / documents, 3),
            "floor_max_documents_per_cpu_s": round(documents / floor, 1) if floor else None,
            "prompts_cpu_ms_per_document": round(1000 * full / documents, 3),
            "text_tokens_per_cpu_s": round(tokens / floor) if floor else None}


class KeepRequests(bench_overhead.InstantEngine):
    """An InstantEngine that keeps the requests it is sent (for `encoding_split`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Request] = []

    def submit(self, request: Request) -> None:
        self.sent.append(request)
        super().submit(request)


def compare(cfg: Any, corpus: list, tokenizer: Any) -> dict:
    """The timed runs in `ORDER`; documents per CPU-second of each setting and their ratio."""
    label = "production cleaning + model tokenizer"
    rates: dict[bool, list[float]] = {False: [], True: []}
    shares: dict[bool, list[float]] = {False: [], True: []}  # prompt encoding / all CPU
    for prefix_ids in ORDER:
        timed = bench_overhead.unit_path(cfg, corpus, label, tokenizer, prefix_ids=prefix_ids)
        print(json.dumps(timed))
        rates[prefix_ids].append(timed["docs_per_cpu_s"])
        shares[prefix_ids].append(round(timed["encode_cpu_s"] / timed["cpu_seconds"], 3))
    whole, once = statistics.mean(rates[False]), statistics.mean(rates[True])
    return {"docs_per_cpu_s_whole": round(whole, 1), "docs_per_cpu_s_prefix_once": round(once, 1),
            "ratio": round(once / whole, 3), "runs": {"whole": rates[False],
                                                      "prefix_once": rates[True]},
            "prompt_encoding_share_of_cpu": {"whole": shares[False],
                                             "prefix_once": shares[True]}}


def main(argv: list[str] | None = None) -> None:
    from bench.run import model_tokenizer
    from mga_spark.config import load_config
    from mga_spark.core.pipeline import Pipeline
    from mga_spark.prompts import load_prompts

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="0: no cProfile run")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    tokenizer = model_tokenizer(cfg)
    corpus = distinct_documents(args.documents)
    bench_overhead.unit_path(cfg, corpus[:50], "warm-up", tokenizer)
    print(json.dumps({"compare": compare(cfg, corpus, tokenizer)}))
    if args.top > 0:
        profiler = cProfile.Profile()
        profiler.enable()
        bench_overhead.unit_path(cfg, corpus, "prefix once (cProfile on)", tokenizer)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())
    keep = KeepRequests(cfg.ga.num_pairs, tokenizer)
    list(Pipeline(cfg, keep, load_prompts()).run(corpus[:200]))  # the pipeline's request order
    print(json.dumps({"encoding_split_200_documents": encoding_split(tokenizer, keep.sent)}))
    print(json.dumps({"encoding_floor_200_documents": encoding_floor(tokenizer, keep.sent)}))


if __name__ == "__main__":
    main()
