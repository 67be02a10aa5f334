"""`python -m bench`: the research harness's throughput run (`bench.run`), or with `--scale`
the dry engine end to end at growing sizes (`bench.scale`). Run from the checkout's root: the
defaults (conf/demo.yaml, bench/tiny, bench/recording-small.json) are paths relative to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mga_spark.job import logs

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def bench(config: Annotated[Path, typer.Option(help="config whose engine args are used")]
          = Path("conf/demo.yaml"),
          out_dir: Annotated[Path | None, typer.Option(
              help="results.md / results.json go here (default: bench/tiny for the tiny "
              "model, else bench)")] = None,
          documents: Annotated[int, typer.Option(help="bench documents")] = 48,
          warmup_documents: Annotated[int, typer.Option(
              help="documents of the untimed warm-up run")] = 6,
          languages: Annotated[str, typer.Option(
              help="of the bench documents: en,zh (every fourth Chinese) or one of them")]
          = "en,zh",
          overrides: Annotated[list[str] | None, typer.Option(  # noqa: UP007
              "--set", "-s", help="override a config key, e.g. --set ga.num_pairs=3")] = None,
          spark: Annotated[bool, typer.Option(help="also run the job on local[1] Spark")] = True,
          plan_files: Annotated[int, typer.Option(help="Parquet files to plan")] = 100_000,
          overhead_documents: Annotated[int, typer.Option(
              help="documents of the non-model overhead runs (0: none)")] = 2000,
          tiny_model: Annotated[bool, typer.Option(help="the tiny CPU model, or the config's"
                                                   " model")] = True,
          rounds: Annotated[int, typer.Option(help="rounds of the in-process phases")] = 3,
          pipeline_rerun: Annotated[bool, typer.Option(
              help="also the pipeline sampling anew (besides on the recorded answers)")] = True,
          exact_lengths: Annotated[bool, typer.Option(
              help="bare, naive and the replayed pipeline generate each request's recorded "
              "output length (no grammar): the schedulers compared on the same tokens")] = False,
          omp_threads: Annotated[int, typer.Option(
              help="OMP_NUM_THREADS for the engines (one engine per core on the CPU: 1)")] = 1,
          sweep: Annotated[bool, typer.Option(help="engine tok/s at fixed concurrency")] = True,
          only_simulation: Annotated[bool, typer.Option(
              help="only the scheduler SIMULATION, added to the existing results files")]
          = False,
          recording: Annotated[Path | None, typer.Option(
              help="request lengths the SIMULATION replays (a bench's recording.json); "
              "default: bench/recording-small.json")] = None,
          scale: Annotated[bool, typer.Option(
              "--scale", help="instead: the dry engine end to end on local Spark at growing "
              "sizes; writes scale.md / scale.json")] = False,
          sizes: Annotated[str, typer.Option(help="with --scale: units per size, comma-"
                                             "separated")] = "1000,10000,50000",
          ) -> None:
    """Throughput: bare engine vs naive per-stage vs our pipeline (alone, in Spark); overheads.
    With --scale: driver and executor memory and time per unit at growing sizes."""
    from bench.run import Settings
    from bench.run import main as bench_main

    logs.setup_logging()
    if scale:
        from bench.scale import ScaleSettings
        from bench.scale import main as scale_main

        units = tuple(int(n) for n in sizes.split(",") if n.strip())
        raise typer.Exit(scale_main(ScaleSettings(out_dir=out_dir or Path("bench"),
                                                   sizes=units)))
    raise typer.Exit(bench_main(Settings(config=config, out_dir=out_dir, documents=documents,
                                         warmup_documents=warmup_documents,
                                         languages=tuple(x.strip() for x in languages.split(",")
                                                         if x.strip()),
                                         overrides=tuple(overrides or ()),
                                         overhead_documents=overhead_documents,
                                         omp_threads=omp_threads,
                                         spark=spark, plan_files=plan_files,
                                         tiny_model=tiny_model, rounds=rounds, sweep=sweep,
                                         pipeline_rerun=pipeline_rerun,
                                         exact_lengths=exact_lengths,
                                         only_simulation=only_simulation,
                                         **({"recording": recording} if recording else {}))))


def main() -> None:
    app(prog_name="python -m bench")
