"""Token budgets checked with the model's real tokenizer and chat template, before any unit runs.

For every prompt language and every enabled stage, the worst case must fit `max_model_len`: GA
and rewrite see a full chunk (`chunking.max_tokens`), the judge a full chunk and a rewrite of
`rewrite.max_tokens`; pair fields are as long as the GA schema's bounds allow. A structured
stage's `max_tokens` must cover the longest answer its JSON schema allows (GA, judge): that
answer is built from the stage's own `answer_schema` with every string at its `maxLength`, every
list at its `maxItems`, and counted with the real tokenizer.

The prompts are the stages' own (`stages/*.request`), so what is checked is what is sent.
Filler text is ordinary prose of the language; a model's answer in denser text (code, digits)
can take more tokens than the estimate, which is why it is a lower bound for `max_tokens`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from mga_spark.config import Config
from mga_spark.prompts import Prompts, prompts_for
from mga_spark.schema import Audience, GAPair, Genre, Stage
from mga_spark.stages import ga, judge, rewrite
from mga_spark.stages.base import Work

log = logging.getLogger(__name__)
FILLER = {
    "en": "The river rises in the hills and runs for many miles through farms and small towns "
          "before it reaches the sea, where ships have traded since early times. ",
    "zh": "这条河发源于山区，流经许多农田和小镇，最后注入大海，自古以来船只就在那里进行贸易。",
}


@dataclass(frozen=True)
class Tokenizer:
    """The model's tokenizer as the engine uses it: chat template with the generation prompt,
    then encoded without special tokens (engine/vllm.py)."""

    hf: Any

    def count(self, text: str) -> int:
        return len(self.hf.encode(text, add_special_tokens=False))

    def prompt_tokens(self, messages: list[dict]) -> int:
        text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.count(text)

    def text_of(self, tokens: int, language: str) -> str:
        """Prose of `language` about `tokens` tokens long."""
        filler = FILLER.get(language, FILLER["en"])
        ids = self.hf.encode(filler * (tokens // max(1, self.count(filler)) + 2),
                             add_special_tokens=False)[:tokens]
        return self.hf.decode(ids)


def load_tokenizer(cfg: Config) -> Tokenizer:
    """The tokenizer vLLM would load for `model.engine_args` (tokenizer, revisions, remote code)."""
    from transformers import AutoTokenizer

    args = cfg.model.engine_args
    hf = AutoTokenizer.from_pretrained(
        args.get("tokenizer") or args["model"],
        revision=args.get("tokenizer_revision") or args.get("revision"),
        trust_remote_code=bool(args.get("trust_remote_code", False)),
        token=args.get("hf_token"))
    return Tokenizer(hf)


def max_model_len(cfg: Config) -> tuple[int, str]:
    """The context length and where it comes from: the engine arg, or the model's config."""
    args = cfg.model.engine_args
    if args.get("max_model_len"):
        return int(args["max_model_len"]), "model.engine_args.max_model_len"
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(args["model"], revision=args.get("revision"),
                                    trust_remote_code=bool(args.get("trust_remote_code", False)),
                                    token=args.get("hf_token"))
    text = getattr(hf, "get_text_config", lambda: hf)()
    return int(text.max_position_embeddings), "the model's max_position_embeddings"


def maximal(schema: dict, filler: str, node: dict | None = None) -> Any:
    """The largest value `schema` allows: strings at maxLength (of `filler`), lists at maxItems,
    numbers at their maximum, every property present. `$ref`s into `$defs` are followed."""
    node = schema if node is None else node
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    kind = node.get("type")
    if kind == "object":
        return {k: maximal(schema, filler, v) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        count = node.get("maxItems", node.get("minItems", 1))
        return [maximal(schema, filler, node["items"]) for _ in range(count)]
    if kind == "string":
        n = node.get("maxLength", 200)
        return (filler * (n // len(filler) + 1))[:n]
    if kind in ("integer", "number"):
        return node.get("maximum", 10**6)
    raise ValueError(f"answer schema: no maximal value for {node!r}")


def answer_tokens(tok: Tokenizer, schema: dict, language: str) -> int:
    """Tokens of the longest compact-JSON answer `schema` allows, in `language`."""
    value = maximal(schema, FILLER.get(language, FILLER["en"]))
    return tok.count(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _worst_work(cfg: Config, tok: Tokenizer, language: str) -> Work:
    chunk = tok.text_of(cfg.chunking.max_tokens, language)
    filler = FILLER.get(language, FILLER["en"])
    title = (filler * 10)[: cfg.ga.max_title_chars]
    description = (filler * 20)[: cfg.ga.max_description_chars]
    pair = GAPair(genre=Genre(title=title, description=description),
                  audience=Audience(title=title, description=description))
    out = cfg.rewrite.output_language or language
    written = rewrite.Rewrite(tok.text_of(cfg.rewrite.max_tokens, out), cfg.rewrite.max_tokens,
                              "stop", None, None)
    return Work(chunk, language, wanted=cfg.ga.num_pairs,
                results={Stage.GA: pair, Stage.REWRITE: written})


def _fits(cfg: Config, tok: Tokenizer, prompts: Prompts, language: str, limit: int,
          source: str) -> list[str]:
    work = _worst_work(cfg, tok, language)
    seen = {"ga": "a full chunk", "rewrite": "a full chunk",
            "judge": "a full chunk and a rewrite of rewrite.max_tokens="
                     f"{cfg.rewrite.max_tokens}"}
    problems = []
    for name, stage in (("ga", ga), ("rewrite", rewrite), ("judge", judge)):
        if not stage.enabled(cfg):
            continue
        call = stage.request(work, cfg, prompts)
        prompt = tok.prompt_tokens(call.messages)
        if prompt + call.max_tokens > limit:
            problems.append(
                f"{name}: its worst-case prompt ({seen[name]}, chunking.max_tokens="
                f"{cfg.chunking.max_tokens}, language {language}) is {prompt} tokens; with "
                f"{name}.max_tokens={call.max_tokens} that is {prompt + call.max_tokens} > "
                f"{source}={limit}: lower chunking.max_tokens or {name}.max_tokens, or give the "
                "model a longer context")
    return problems


def _worst_answer(tok: Tokenizer, schema: dict, languages: tuple[str, ...]) -> tuple[int, str]:
    return max((answer_tokens(tok, schema, lang), lang) for lang in languages)


def _answers(cfg: Config, tok: Tokenizer, languages: tuple[str, ...]) -> list[str]:
    """A line for each structured stage whose max_tokens is below its schema's longest answer."""
    checks = []  # (stage, schema, max_tokens, what bounds the answer, what to change)
    if cfg.ga.structured_output:
        checks.append(("ga", ga.answer_schema(cfg.ga.num_pairs, cfg.ga.max_title_chars,
                                              cfg.ga.max_description_chars), cfg.ga.max_tokens,
                       f"{cfg.ga.num_pairs} pairs, titles up to ga.max_title_chars="
                       f"{cfg.ga.max_title_chars}, descriptions up to ga.max_description_chars="
                       f"{cfg.ga.max_description_chars}",
                       "raise ga.max_tokens or lower the bounds, or answers are cut at max_tokens"))
    if cfg.judge.enabled and cfg.judge.structured_output and cfg.judge.mode == "score":
        checks.append(("judge", judge.score_schema(), cfg.judge.max_tokens,
                       "judge.mode=score: the score alone", "raise judge.max_tokens"))
    elif cfg.judge.enabled and cfg.judge.structured_output:
        checks.append(("judge", judge.answer_schema(cfg.judge.max_analysis_chars),
                       cfg.judge.max_tokens,
                       f"an analysis up to judge.max_analysis_chars={cfg.judge.max_analysis_chars}",
                       "raise judge.max_tokens or lower judge.max_analysis_chars"))
    problems = []
    for stage, schema, max_tokens, bounds, remedy in checks:
        need, language = _worst_answer(tok, schema, languages)
        need += 1  # the end token: an answer that fills max_tokens ends as "length", truncated
        if max_tokens < need:
            problems.append(f"{stage}.max_tokens={max_tokens} is below the longest answer its "
                            f"schema allows: ~{need} tokens in {language} with the end token "
                            f"({bounds}): {remedy}")
    return problems


def problems(cfg: Config, tok: Tokenizer, prompts: Prompts | None = None,
             limit: tuple[int, str] | None = None) -> list[str]:
    """Every budget problem of `cfg` with this tokenizer, one line each naming the keys."""
    prompts = prompts or prompts_for(cfg)
    limit_tokens, source = limit or max_model_len(cfg)
    languages = prompts.languages if cfg.input.language == "auto" else (cfg.input.language,)
    found = [line for language in languages
             for line in _fits(cfg, tok, prompts, language, limit_tokens, source)]
    return found + _answers(cfg, tok, languages)
