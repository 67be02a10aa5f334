"""The dry engine (`model.engine: dry`): instant canned answers, to test the plumbing.

It answers every request at once, without a model or a tokenizer, with answers the pipeline
accepts: a GA answer with the requested number of distinct pairs inside the JSON schema's bounds,
a rewrite that passes the cleaning filters, and a passing judge verdict. Users run it to try a
cluster, storage, permissions or an Airflow DAG before spending GPU hours; the benchmark uses it
to measure everything but the model. Its rows say `dry` in the `model` column.

The rewrite is the source with a filler inserted after every word (CJK: every 4 characters): all
of the source's keywords stay (coverage), no 5-word (CJK: 8-character) run of the source is left
(not a copy), the language is the source's, and each pair index has its own filler, so sibling
variants share no shingle. When `rewrite.output_language` differs from the source's script, a
canned text in that language stands in for the translation.

Which stage a request is for comes from its JSON schema (GA: "pairs", judge: "score"), else from
the stage field of the pipeline's request id (`nonce/doc/chunk/stage/pair`, joined by \\x1f);
the id's pair index picks the rewrite's filler.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.engine.base import Completion, Request

# English function words: a rewrite that is half fillers still reads as English to the detector
EN_FILLERS = ("the", "of", "and", "to", "is", "that", "for", "with", "was", "are", "this",
              "which", "from", "by", "be", "have", "has", "were", "their", "they", "its", "also",
              "than", "into")
ZH_FILLERS = "嗯啊呀哦呢吧嘛啦哇哟喔咦唉嘿哈呵噢哎嗨呐咯嘞喽呗"
CANNED = {
    "en": "This dry run text stands in for a rewrite of the source document in English",
    "zh": "这是一段试运行的文本，代替对原始文档的中文改写，用来检验整条流程是否畅通",
}
VERDICT = "Dry run: a canned verdict that passes."
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_TOKEN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"
                    "|[^\\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
_DOCUMENT = re.compile(r"<document>\n?(.*?)\n?</document>", re.S)
_ESCAPED_TAG = re.compile(r"<\\/(\s*(?:document|rewrite)\s*)>", re.I)
_NUMBER = re.compile(r"\d+")


@dataclass
class DryEngine:
    """An `Engine` that answers from templates (see the module docstring)."""

    cfg: Config
    model_name: str = "dry"
    _queue: deque = field(default_factory=deque)
    _totals: dict = field(default_factory=lambda: {"prompt_tokens": 0.0,
                                                   "prompt_tokens_cached": 0.0,
                                                   "generation_tokens": 0.0})

    def submit(self, request: Request) -> None:
        self._queue.append(request)

    def poll(self) -> list[Completion]:
        done = []
        while self._queue:
            req = self._queue.popleft()
            text = self._answer(req)
            tokens = _TOKEN.findall(text)
            finish = "stop"
            if len(tokens) > req.max_tokens:  # cannot happen with sane bounds; never hidden
                text, finish = " ".join(tokens[:req.max_tokens]), "length"
            prompt = sum(self.count_tokens(str(m.get("content", ""))) for m in req.messages)
            output = self.count_tokens(text)
            self._totals["prompt_tokens"] += prompt
            self._totals["generation_tokens"] += output
            done.append(Completion(req.id, text, finish, prompt, output))
        return done

    def has_pending(self) -> bool:
        return bool(self._queue)

    def count_tokens(self, text: str) -> int:
        """Words, and each CJK character: about what a tokenizer gives, without one."""
        return len(_TOKEN.findall(text))

    def metrics(self) -> dict[str, float]:
        return dict(self._totals)

    def abort_all(self) -> None:
        self._queue.clear()

    def shutdown(self) -> None:
        self._queue.clear()

    # -- answers -----------------------------------------------------------------------------

    def _answer(self, req: Request) -> str:
        stage, pair = _stage(req)
        user = str(req.messages[-1].get("content", "")) if req.messages else ""
        if stage == "ga":
            return self._ga(req, user)
        if stage == "judge" and self.cfg.judge.mode == "score":
            return "5"
        if stage == "judge":
            bound = _string_bound(req.json_schema, "analysis", self.cfg.judge.max_analysis_chars)
            return json.dumps({"analysis": VERDICT[:bound], "score": 5})
        return self._rewrite(user, pair, req.max_tokens)

    def _ga(self, req: Request, user: str) -> str:
        wanted = _pairs_wanted(req.json_schema, user, self.cfg.ga.num_pairs)
        tag = hashlib.blake2b(user.encode("utf-8", "replace"), digest_size=2).hexdigest()
        title = _string_bound(req.json_schema, "title", self.cfg.ga.max_title_chars)
        desc = _string_bound(req.json_schema, "description", self.cfg.ga.max_description_chars)
        pairs = []
        for n in range(1, wanted + 1):
            pairs.append({
                "genre": {"title": _fit(title, f"Dry genre {n} {tag}", f"G{n} {tag}"),
                          "description": "A plain explanatory text."[:desc]},
                "audience": {"title": _fit(title, f"Dry readers {n} {tag}", f"R{n} {tag}"),
                             "description": "Adults who read for general interest."[:desc]},
            })
        return json.dumps({"pairs": pairs}, ensure_ascii=False)

    def _rewrite(self, user: str, pair: int, max_tokens: int) -> str:
        found = _DOCUMENT.search(user)
        source = _ESCAPED_TAG.sub(r"</\1>", found.group(1)) if found else user
        source_cjk = _is_cjk(source)
        target = self.cfg.rewrite.output_language
        if target is not None and (target == "zh") != source_cjk:
            source, source_cjk = CANNED[target], target == "zh"
        min_chars = self.cfg.clean.min_chars
        if source_cjk:
            return _interleave_cjk(source, ZH_FILLERS[pair % len(ZH_FILLERS)], max_tokens,
                                   min_chars)
        return _interleave_words(source, EN_FILLERS[pair % len(EN_FILLERS)], max_tokens,
                                 min_chars)


def _stage(req: Request) -> tuple[str, int]:
    """(stage, pair index) of a pipeline request; the index is 0 when it has none."""
    parts = req.id.rsplit("\x1f", 2)
    stage = parts[1] if len(parts) == 3 else "rewrite"
    pair = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
    props = (req.json_schema or {}).get("properties", {})
    if "pairs" in props:
        stage = "ga"
    elif "score" in props:
        stage = "judge"
    return stage, pair


def _pairs_wanted(schema: dict | None, user: str, default: int) -> int:
    """minItems of the schema's pairs; without a schema, the first number of the GA task."""
    if schema:
        return int(schema["properties"]["pairs"].get("minItems", default))
    task = user.rsplit("</document>", 1)[-1]
    found = _NUMBER.search(task)
    return int(found.group()) if found else default


def _string_bound(schema: dict | None, name: str, default: int) -> int:
    """The schema's maxLength for string properties called `name` (found anywhere in it)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == name and isinstance(value, dict) and "maxLength" in value:
                return int(value["maxLength"])
            found = _string_bound(value, name, -1) if isinstance(value, dict) else -1
            if found >= 0:
                return found
    return default


def _fit(bound: int, *candidates: str) -> str:
    return next((c for c in candidates if len(c) <= bound), candidates[-1][:bound])


def _is_cjk(text: str) -> bool:
    letters = sum(1 for c in text if c.isalpha())
    return letters > 0 and len(_CJK.findall(text)) >= 0.3 * letters


def _interleave_words(source: str, filler: str, max_tokens: int, min_chars: int) -> str:
    words = source.split() or ["text"]
    out: list[str] = []
    i = 0
    while len(out) + 2 <= max_tokens and (i < len(words) or len(" ".join(out)) < min_chars):
        out += [words[i % len(words)], filler]
        i += 1
    return " ".join(out)


def _interleave_cjk(source: str, filler: str, max_tokens: int, min_chars: int) -> str:
    text = "".join(source.split()) or CANNED["zh"]
    out = ""
    i, tokens = 0, 0
    while tokens + 5 <= max_tokens and (i < len(text) or len(out) < min_chars):
        piece = (text * 2)[i % len(text):i % len(text) + 4]
        out += piece + filler
        tokens += len(_TOKEN.findall(piece)) + 1
        i += 4
    return out
