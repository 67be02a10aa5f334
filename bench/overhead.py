"""Non-model overhead: the whole unit path (`unit.process_unit`: read Parquet, chunk, build
prompts, parse, clean, write Arrow/Parquet, commit) with an engine that answers instantly.

`InstantEngine` returns valid canned answers (GA pairs, a paraphrase of the document that passes
cleaning and the sibling check, a passing verdict), so every document takes the full accepted
path. With `tokenizer` set it also pays what the vLLM wrapper pays per request outside the model:
token counts with the model's tokenizer, and the chat template rendered and encoded through the
engine's own `PromptEncoder` (the document prefix encoded once per chunk; `prefix_ids=False`:
every prompt encoded whole).
"""

from __future__ import annotations

import json
import re
import resource
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.phases import stage_of
from mga_spark.config import Config, load_config
from mga_spark.engine.base import Completion, Request
from mga_spark.engine.prompt_ids import PromptEncoder
from mga_spark.schema import Document

_DOCUMENT = re.compile(r"<document>\n(.*?)\n</document>", re.DOTALL)
# common function words, so rewrites read as English to the language check's fast path
_FILLERS = ("also", "and", "but", "more", "only", "such", "that", "there")
_CJK_FILLERS = "嗯啊呀哦哈嘛呢吧"


def paraphrase(source: str, variant: int) -> str:
    """Every source word kept, a filler word after every 4th (CJK: a filler character every 4
    characters): about the source's length, no copied 5-word (8-character) run, and variants
    of one chunk differ in every shingle."""
    if " " not in source.strip():
        filler = _CJK_FILLERS[variant % len(_CJK_FILLERS)]
        return filler.join(source[i:i + 4] for i in range(0, len(source), 4))
    filler, words = _FILLERS[variant % len(_FILLERS)], source.split()
    return " ".join(" ".join(words[i:i + 4] + [filler]) for i in range(0, len(words), 4))


def canned_answer(request: Request, num_pairs: int) -> str:
    stage = stage_of(request.id)
    if stage == "ga":
        return json.dumps({"pairs": [
            {"genre": {"title": f"Genre {i}", "description": f"A plain genre, number {i}."},
             "audience": {"title": f"Audience {i}", "description": f"Readers of kind {i}."}}
            for i in range(num_pairs)]})
    if stage == "rewrite":
        found = _DOCUMENT.search(request.messages[-1]["content"])
        pair = request.id.split("\x1f")[-1]
        return paraphrase(found.group(1) if found else "", int(pair) if pair.isdigit() else 0)
    return json.dumps({"analysis": "Keeps the information points.", "score": 4})


@dataclass
class InstantEngine:
    """Answers every request in the next poll, with canned valid answers."""

    num_pairs: int
    tokenizer: Any = None  # a Hugging Face tokenizer: count and render like the vLLM wrapper
    prefix_ids: bool = True  # as VLLMEngine's: the document prefix encoded once per chunk
    model_name: str = "instant"
    _queue: deque = field(default_factory=deque)
    encoder: PromptEncoder | None = field(default=None, init=False)
    encode_cpu_s: float = field(default=0.0, init=False)  # CPU in encoder.encode (prompts)

    def __post_init__(self) -> None:
        if self.tokenizer is not None:
            self.encoder = PromptEncoder(self.tokenizer, enabled=self.prefix_ids)

    def submit(self, request: Request) -> None:
        prompt_tokens = 0
        if self.encoder is not None:
            prompt = self.tokenizer.apply_chat_template(
                request.messages, tokenize=False, add_generation_prompt=True)
            started = time.process_time()
            prompt_tokens = len(self.encoder.encode(prompt))
            self.encode_cpu_s += time.process_time() - started
        self._queue.append((request, prompt_tokens))

    def poll(self) -> list[Completion]:
        done = []
        while self._queue:
            request, prompt_tokens = self._queue.popleft()
            text = canned_answer(request, self.num_pairs)
            done.append(Completion(request.id, text, "stop", prompt_tokens, len(text) // 4))
        return done

    def has_pending(self) -> bool:
        return bool(self._queue)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def metrics(self) -> dict[str, float]:
        return {}

    def abort_all(self) -> None:
        self._queue.clear()


def corpus_of(docs: list[Document], n: int) -> list[Document]:
    """`n` documents cycling through `docs`, with unique ids."""
    return [Document(f"{docs[i % len(docs)].id}-{i}", docs[i % len(docs)].text,
                     dict(docs[i % len(docs)].extra)) for i in range(n)]


def unit_path(cfg: Config, docs: list[Document], label: str, tokenizer: Any = None,
              unit_docs: int = 1000, input_tokens: int | None = None,
              prefix_ids: bool = True) -> dict:
    """Run every unit of `docs` through `process_unit` on an InstantEngine; docs/s per core.
    Call it once untimed first: the first run pays one-time imports and detector loading."""
    from bench.spark import write_corpus
    from mga_spark.io.plan import make_plan
    from mga_spark.job.unit import process_unit

    with tempfile.TemporaryDirectory(prefix="mga-bench-overhead-") as tmp:
        corpus = write_corpus(Path(tmp) / "input", docs, min(unit_docs, 1000))
        run_cfg = load_config(None, [f"input.paths={json.dumps([str(corpus)])}",
                                     f"output.path={json.dumps(str(Path(tmp) / 'out'))}"],
                              cfg.model_dump(mode="json"))
        plan = make_plan(run_cfg.input, unit_docs)
        engine = InstantEngine(cfg.ga.num_pairs, tokenizer, prefix_ids)
        accepted = 0
        cpu0, started = _cpu(), time.perf_counter()
        for unit in plan.units:
            manifest = process_unit(run_cfg, unit, engine, run_cfg.output.path)
            accepted += manifest["counts"].get("accepted", 0)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu0
    return {"label": label, "documents": len(docs), "units": len(plan.units),
            "accepted": accepted, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "docs_per_s": round(len(docs) / seconds, 1),
            "docs_per_cpu_s": round(len(docs) / cpu, 1) if cpu else None,
            "ms_per_doc": round(1000 * cpu / len(docs), 2),
            "input_tokens_per_cpu_s": round(input_tokens / cpu) if input_tokens and cpu else None,
            **({"prefix_ids": prefix_ids, "encode": asdict(engine.encoder.stats),
                "encode_cpu_s": round(engine.encode_cpu_s, 3)}
               if engine.encoder is not None else {})}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
