"""The configuration reference, docs/configuration.md, generated from the pydantic models of
`mga_spark.config`: every key with its type, default, bounds and description, so the page cannot
drift from the code (tests/test_docs.py regenerates it and fails when the committed page differs).

    python -m mga_spark.tools.config_doc docs/configuration.md           # rewrite the page
    python -m mga_spark.tools.config_doc --check docs/configuration.md   # exit 1 when stale

A key's description is its `Field(description=...)`, else the comment it carries in the source
(on its own line or in the comment lines right above it), else its entry in `SUPPLEMENT`. A key
with none is an error, and so is a `SUPPLEMENT` entry the source already describes or that names
no key: the table only shrinks, as descriptions move into mga_spark/config.py.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import re
import sys
import textwrap
import tokenize
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mga_spark import config

REGENERATE = "python -m mga_spark.tools.config_doc docs/configuration.md"
INTRO = """\
A job is one YAML file (examples in [conf/](../conf/)), validated before anything else runs.
Any key can be overridden on the command line with `--set section.key=value` (the value is
parsed as YAML, e.g. `--set 'ga.pairs=[]'`). An unknown key or a value out of bounds fails with
the key's path and what is allowed:

```
$ mga-spark run --config conf/demo.yaml -i x -o y --set rewrite.mode=wild
error: invalid configuration:
  rewrite.mode: Input should be 'base', 'strict' or 'relaxed'; got 'wild'
```

*In the fingerprint* says whether a key changes the rows a run writes. `_run.json` records
those keys and a hash of them; a resume with a different value is refused, naming the key
(see [operations.md](operations.md#resume-after-a-change)). The other keys are operational:
they change where the output goes or how fast it is made, and a resume may change them.
`model.engine_args` is passed to `vllm.LLM(...)` as it is; of its entries, the ones that change
the text (model, revision, tokenizer, dtype, quantization, seed, `max_model_len`, ...) are in
the fingerprint.
"""


# Descriptions of the keys mga_spark/config.py does not describe yet (move them there as
# Field(description=...) and delete them here; the page does not change).
SUPPLEMENT = {
    "input.text_column": "the column holding each document's text (string or binary)",
    "input.carry_columns": "input columns copied onto every output row (written as strings)",
    "input.on_bad_file": "fail: a bad input file stops the run before any model loads; skip: "
    "bad files are left out and listed in stats.json (`verify` counts them)",
    "input.language": "auto: each document's language is detected; en or zh: forced",
    "output.path": "the output URI (`--output`); an existing output is resumed",
    "output.compression": "Parquet compression of data/ and rejects/",
    "output.previous": "with mode append: the earlier output whose pairs this run avoids",
    "model.device": "cpu or cuda: refuse to start when the installed vLLM runs on the other; "
    "auto: whatever it runs on",
    "ga.num_pairs": "genre-audience pairs, so rewrites, per chunk (the paper: 5)",
    "ga.temperature": "sampling temperature of GA answers",
    "ga.top_p": "nucleus sampling of GA answers",
    "ga.structured_output": "GA answers under a JSON schema with length bounds (structured "
    "outputs); false: free text, parsed defensively",
    "ga.pairs[].genre.title": "the genre's name (not blank)",
    "ga.pairs[].genre.description": "what the genre is like",
    "ga.pairs[].audience.title": "the audience's name (not blank)",
    "ga.pairs[].audience.description": "who the readers are",
    "rewrite.mode": "the paper's rewrite modes: base (the default), strict (close to the "
    "source), relaxed (freer; the paper saw 60% of them fail the judge)",
    "rewrite.max_tokens": "a rewrite cut at this length is rejected `rewrite_truncated`",
    "rewrite.temperature": "sampling temperature of rewrites",
    "rewrite.top_p": "nucleus sampling of rewrites",
    "judge.enabled": "false: no judge request; a rewrite that passes cleaning is accepted "
    "without a score",
    "judge.mode": "analysis: a short analysis, then the score, as JSON; score: the score alone "
    "(one token; no `judge_analysis` on the row)",
    "judge.threshold": "a rewrite scored below this (1-5) is rejected `judge_failed`",
    "judge.temperature": "sampling temperature of the judge",
    "judge.structured_output": "judge answers under a JSON schema (structured outputs)",
    "clean.strip_boilerplate": "strip the model's openings (\"Here is the rewritten text:\") "
    "and closing notes from rewrites",
    "clean.min_keyword_coverage": "a rewrite keeping a smaller share of its source's 20 top "
    "keywords is rejected `low_keyword_coverage`",
    "clean.max_copy_similarity": "a rewrite whose novelty is at or below 1 minus this is "
    "rejected `near_copy`",
    "clean.min_chars": "a rewrite shorter than this after cleaning is rejected "
    "`empty_after_cleaning`",
    "pipeline.seed": "mixed into every request's seed, which comes from the request's key "
    "(document, chunk, stage, pair), never from the order",
    "job.spark_conf": "Spark settings for the session (any key; settings that put MGA_SPARK_* "
    "variables into the environment are refused)",
    "job.write_retries": "retries of a transient storage error per file write, with "
    "exponential backoff and jitter",
}


class UndocumentedKey(ValueError):
    """A configuration key with neither a Field description nor a comment in the source."""


@dataclass(frozen=True)
class Key:
    path: str
    type: str
    default: str
    description: str


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: `"a" | "b"`, `list of string`, `integer or null`."""
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a)
                           for a in get_args(annotation))
    if origin is list:
        return f"list of {type_name(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {type_name(key)} to {type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds(field: FieldInfo) -> str:
    """The field's numeric and length bounds, e.g. `>= 1, <= 20` (pydantic keeps them as
    annotated-types objects, one attribute each: ge, gt, le, lt, min_length, max_length)."""
    signs = [("ge", ">= {}"), ("gt", "> {}"), ("le", "<= {}"), ("lt", "< {}"),
             ("min_length", "length >= {}"), ("max_length", "length <= {}")]
    return ", ".join(text.format(getattr(item, attr)) for item in field.metadata
                     for attr, text in signs if getattr(item, attr, None) is not None)


def default_of(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(below)"
    return f"`{json.dumps(value)}`"


def source_comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment in the model's source: trailing its line(s), or the comment lines
    right above it."""
    source = textwrap.dedent(inspect.getsource(model))
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(token.start[0])
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        end = node.end_lineno or node.lineno
        text = [comments[n] for n in range(node.lineno, end + 1) if n in comments]
        if not text:
            line = node.lineno - 1
            while line in comments and line not in code_lines:
                text.insert(0, comments[line])
                line -= 1
        if text:
            found[node.target.id] = " ".join(text)
    return found


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `Model`, `list[Model]` or `Model | None`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[Key]:
    """Every key of `model`, depth first; a list of models adds `[]` to the path."""
    comments = source_comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested_model(field.annotation)
        text = field.description or comments.get(name, "")
        if text and path in SUPPLEMENT:
            raise UndocumentedKey(f"{path} is described in the source now: delete its entry in "
                                  "mga_spark.tools.config_doc.SUPPLEMENT")
        text = text or SUPPLEMENT.get(path, "")
        if nested is None or get_origin(field.annotation) is list:
            if not text:
                raise UndocumentedKey(
                    f"{path} ({model.__name__}.{name}) has no description: give it "
                    f"Field(description=...) or a comment in {inspect.getsourcefile(model)}")
            kind = type_name(field.annotation)
            limits = bounds(field)
            yield Key(path, f"{kind} ({limits})" if limits else kind, default_of(field), text)
        if nested is not None:
            inner = "[]." if get_origin(field.annotation) is list else "."
            yield from keys(nested, f"{path}{inner}")


def fingerprinted() -> set[str]:
    """The keys a minimal config puts in its fingerprint (`Config.fingerprint_inputs`)."""
    cfg = config.Config.model_validate({"model": {"engine_args": {"model": "m"}}})
    return set(cfg.fingerprint_inputs(prompt_version="p"))


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, Python's None spelled as YAML's null."""
    return re.sub(r"\bNone\b", "null", " ".join(text.split())).replace("|", "\\|")


def render(root: type[BaseModel] = config.Config) -> str:
    """The whole page, Markdown: one table per top-level section."""
    in_print = fingerprinted() if root is config.Config else set()
    if root is config.Config:
        stray = sorted(set(SUPPLEMENT) - {key.path for key in keys(root)})
        if stray:
            raise UndocumentedKey(f"SUPPLEMENT describes keys that do not exist: {stray}")
    out = ["# Configuration reference", "",
           f"Generated from `{root.__module__}` by `{REGENERATE}`; do not edit by hand.", "",
           INTRO]
    for section, field in root.model_fields.items():
        model = _nested_model(field.annotation)
        if model is None:
            continue
        out += [f"## {section}", ""]
        doc = inspect.getdoc(model)
        if doc and doc != inspect.getdoc(BaseModel) and model.__doc__:
            out += [" ".join(doc.split()), ""]
        out += ["| key | type | default | in the fingerprint | description |",
                "|---|---|---|---|---|"]
        for key in keys(model, f"{section}."):
            base = key.path.split("[]")[0]
            printed = "yes" if any(k == base or k.startswith(base + ".")
                                   for k in in_print) else "no"
            if key.path == "model.engine_args":
                printed = "the entries that change text"
            out.append(f"| `{key.path}` | {_cell(key.type)} | {key.default} | {printed} | "
                       f"{_cell(key.description)} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) != 1:
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)
        return 2
    page, text = Path(paths[0]), render()
    if check:
        if not page.is_file() or page.read_text("utf-8") != text:
            print(f"{page} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    page.write_text(text, "utf-8")
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
