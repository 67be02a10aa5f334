"""Checks of a run's configuration before any executor starts, on the driver (`check`), and in the
first task when only executors can read the model (`check_on_cluster`).

- output and input paths: the output is not under an input path, no input is under the output;
- columns, from the footers planning read: carried columns do not clash with output columns and
  are not nested in any file (scalar types may differ across files: carried values are written
  as strings, so the output has one schema); the pairs column has a type `core/pairs` reads
  (invalid UTF-8 in a string or binary pairs column is per row, not visible in a footer);
- `model.engine_args` against vLLM's own `EngineArgs` and `LLM(...)` parameters (an unknown key
  is named with the closest known one), when vLLM is importable here;
- the token budgets (`budget.py`) with the model's real tokenizer and chat template.

Every problem names the key or file; all of them are reported at once as a `PreflightError`
(a `ConfigError`: the command exits 2). What the driver cannot check (no vLLM here, a model that
only executors can read) is logged as deferred, and the Spark runner's first task checks it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import logging
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from fsspec.core import url_to_fs

from mga_spark.config import Config, ConfigError
from mga_spark.io.plan import GLOB_CHARS, Plan
from mga_spark.job import budget
from mga_spark.schema import DATA_SCHEMA

log = logging.getLogger(__name__)


class PreflightError(ConfigError):
    """The run's configuration cannot work; every line names the key or file."""


def check(cfg: Config, plan: Plan) -> None:
    """Everything the driver can check before executors start; raises PreflightError."""
    found = path_problems(cfg) + column_problems(cfg, plan)
    if cfg.model.engine == "vllm":
        found += engine_arg_problems(cfg.model.engine_args)
        if readable_here(cfg):
            found += model_problems(cfg)
        else:
            log.warning("model %r is not readable on the driver: its token budgets are checked "
                        "by the first task, before any unit runs", cfg.model.engine_args["model"])
    _raise(found)


def _raise(found: list[str]) -> None:
    if found:
        raise PreflightError("the configuration cannot work:\n  " + "\n  ".join(found))


# -- paths -------------------------------------------------------------------------------------


def _root(uri: str) -> str:
    """`uri` as a full URI without a trailing slash; a glob cut back to its fixed directory."""
    fs, path = url_to_fs(uri)
    if any(c in path for c in GLOB_CHARS):
        path = path[: min(path.index(c) for c in GLOB_CHARS if c in path)].rsplit("/", 1)[0]
    return fs.unstrip_protocol(path.rstrip("/"))


def _under(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer + "/")


def path_problems(cfg: Config) -> list[str]:
    out = _root(cfg.output.path)
    found = []
    for path in cfg.input.paths:
        root = _root(path)
        if _under(out, root):
            found.append(f"output.path {cfg.output.path!r} is inside input path {path!r}: a "
                         "re-run would read its own output")
        elif _under(root, out):
            found.append(f"input path {path!r} is inside output.path {cfg.output.path!r}")
    return found


# -- columns -----------------------------------------------------------------------------------


def _pairs_type_ok(typ: pa.DataType) -> bool:
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return (pa.types.is_null(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)
            or pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
            or pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_struct(typ))


def column_problems(cfg: Config, plan: Plan) -> list[str]:
    """Carried and pairs columns against the types the footers gave (`Plan.column_types`)."""
    found = []
    for name in cfg.input.carry_columns:
        if name in DATA_SCHEMA.names:
            found.append(f"input.carry_columns: {name!r} clashes with an output column of the "
                         "same name")
        types = plan.column_types.get(name, {})
        for typ, file in types.items():
            if pa.types.is_nested(typ):
                found.append(f"input.carry_columns: {name!r} has nested type {typ} in {file}; "
                             "only scalar columns can be carried")
    name = cfg.input.pairs_column
    for typ, file in plan.column_types.get(name, {}).items() if name else ():
        if not _pairs_type_ok(typ):
            found.append(f"input.pairs_column: {name!r} has type {typ} in {file}; expected a "
                         "list of pair structs or JSON text (string or binary)")
    return found


# -- engine arguments --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def vllm_arg_names() -> frozenset[str] | None:
    """The keyword arguments `vllm.LLM(...)` accepts: its own parameters and `EngineArgs`'s
    fields; None when vLLM is not importable here."""
    if importlib.util.find_spec("vllm") is None:
        return None
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    own = {p for p in inspect.signature(LLM.__init__).parameters if p not in ("self", "kwargs")}
    return frozenset(own | {f.name for f in dataclasses.fields(EngineArgs)})


def engine_arg_problems(args: dict, known: Collection[str] | None = None) -> list[str]:
    known = known if known is not None else vllm_arg_names()
    if known is None:
        log.warning("vLLM is not installed on the driver: model.engine_args are checked by the "
                    "first task, before any unit runs")
        return []
    found = []
    for key in sorted(set(args) - set(known)):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        found.append(f"model.engine_args.{key}: not an argument of vLLM's EngineArgs{hint}")
    return found


# -- the model ---------------------------------------------------------------------------------


def readable_here(cfg: Config) -> bool:
    """Whether this process can read the model's tokenizer: a local directory here, or a hub id
    the hub answers for (a path or URI absent here is for executors to read)."""
    args = cfg.model.engine_args
    name = str(args.get("tokenizer") or args["model"])
    if Path(name).is_dir():
        return True
    if "://" in name or name.startswith(("/", ".", "~")):
        return False
    try:
        budget.load_tokenizer(cfg)
    except OSError:  # no network, offline mode, no such repo: executors may still read it
        return False
    return True


def model_problems(cfg: Config) -> list[str]:
    """The budget checks with the model's tokenizer; a model that cannot be read is named."""
    model = cfg.model.engine_args["model"]
    try:
        tok = budget.load_tokenizer(cfg)
        limit = budget.max_model_len(cfg)
    except Exception as e:  # OSError, ValueError, or transformers' own for an unknown model
        return [f"model.engine_args.model: cannot read the tokenizer or config of {model!r}: "
                f"{type(e).__name__}: {e}"]
    try:
        return budget.problems(cfg, tok, limit=limit)
    except Exception as e:  # e.g. a tokenizer without a chat template: every request would fail
        return [f"model.engine_args.model: the prompts of {model!r} cannot be built with its "
                f"tokenizer and chat template: {type(e).__name__}: {e}"]


def check_model(cfg: Config) -> None:
    """What an executor checks in the first task: engine args (vLLM is there) and budgets."""
    _raise(engine_arg_problems(cfg.model.engine_args) + model_problems(cfg))


def _task(payload: dict) -> list[str]:
    cfg = Config.model_validate(payload)
    try:
        check_model(cfg)
    except PreflightError as e:
        return [str(e)]
    return []


def check_on_cluster(spark, cfg: Config) -> None:
    """The model checks as a one-task Spark job, when the driver could not read the model;
    a problem fails the run before any unit runs."""
    if cfg.model.engine != "vllm" or readable_here(cfg):
        return
    payload = cfg.model_dump(mode="json")
    (problems,) = spark.sparkContext.parallelize([payload], 1).map(_task).collect()
    if problems:
        raise PreflightError(f"checked on an executor: {problems[0]}")
