"""`mga-spark report` and the dataset card, on an output of the real job run in process on the
fake engine: the page and PNGs, loading the output exactly as the card says, and the page in
headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from mga_spark.cli import app
from mga_spark.tools.report import build as report_build
from mga_spark.tools.report import facts as report
from mga_spark.tools.report import page as report_page
from mga_spark.tools.verify import verify
from tests.helpers import (
    EN_TEXT,
    FR_TEXT,
    ZH_TEXT,
    make_config,
    pairs_json,
    run_fake,
    scripted,
    verdict_json,
    write_input,
)

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script(stage, source, chunk, pair, req):
    if stage == "ga" and source in ("doc-1", "doc-7"):  # the Chinese documents
        return pairs_json(5, "中文体裁")
    if stage == "ga" and source == "doc-3" and chunk == 1:  # the long one's second chunk
        return "not JSON"
    if stage == "judge":
        return verdict_json(5 - (pair + int(source[-1])) % 5)  # scores 1-5 over the slots
    return None


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """10 documents in 3 units: English, Chinese, long (2 chunks), French, null; originals on."""
    base = tmp_path_factory.mktemp("report")
    texts = [EN_TEXT, ZH_TEXT, EN_TEXT + " More.", "\n\n".join([EN_TEXT] * 3), FR_TEXT, None,
             EN_TEXT.replace("green", "leafy"), ZH_TEXT + "。", EN_TEXT + " Even more.", EN_TEXT]
    rows = [{"id": f"doc-{i}", "text": t, "topic": "biology"} for i, t in enumerate(texts)]
    inp = write_input(base / "in", rows, row_group_size=4)
    cfg = make_config(input={"paths": [str(inp)], "id_column": "id", "carry_columns": ["topic"]},
                      output={"path": str(base / "out"), "include_original": True},
                      chunking={"max_tokens": 120}, job={"unit_docs": 4})
    out = run_fake(cfg, scripted(_script)).output
    assert verify(str(out)).ok
    return out


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, dict] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            self.found[a["id"]] = {"tag": tag, **a}


def elements(page: str) -> dict[str, dict]:
    parser = _Elements()
    parser.feed(page)
    return parser.found


def test_the_page_escapes_what_the_output_holds(output: Path):
    """Genre titles and paths come from model output and users: the template escapes them."""
    f = report.collect(str(output))
    f.output = "s3://b/<i>out</i>"
    f.genres = [("<script>alert(1)</script>", 3), ('a "quoted" & <b>bold</b> genre', 2)]
    page = report_page.render(f, {name: PNG_MAGIC for name in report_page.PLOTS})
    assert "<script>" not in page and "<b>bold" not in page and "<i>out" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &#34;quoted&#34; &amp; &lt;b&gt;bold&lt;/b&gt; genre" in page
    assert "<title>MGA report: s3://b/&lt;i&gt;out&lt;/i&gt;</title>" in page
    cells = re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">(\d+)</td></tr>",
                       page[page.index('id="table-genres"'):])
    assert cells[:2] == [("&lt;script&gt;alert(1)&lt;/script&gt;", "3"),
                         ("a &#34;quoted&#34; &amp; &lt;b&gt;bold&lt;/b&gt; genre", "2")]


def test_report_writes_the_page_and_one_png_per_plot(output: Path):
    result = report_build.build(str(output))
    assert result.html == f"{output}/report/index.html"
    for name in report_page.PLOTS:
        png = (output / "report" / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000, name
    page = (output / "report" / "index.html").read_text()
    found = elements(page)
    for name in report_page.PLOTS:
        img = found[f"plot-{name}"]
        assert img["tag"] == "img" and img["src"].startswith("data:image/png;base64,")
    for name in report_page.TABLES:
        assert found[f"table-{name}"]["tag"] == "table"
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing to fetch
    assert (output / "README.md").is_file()


def test_report_numbers_match_the_output(output: Path):
    facts = report.collect(str(output))
    data = pq.read_table(output / "data").to_pylist()
    rewrites = [r for r in data if r["kind"] == "reformulation"]
    rejects = pq.read_table(output / "rejects").to_pylist()
    assert sum(facts.scores_accepted.values()) == len(rewrites)
    judged_out = [r for r in rejects if r["reason"] == "judge_failed"]
    assert sum(facts.scores_failed.values()) == len(judged_out) > 0
    assert set(facts.scores_failed) <= {1, 2} and set(facts.scores_accepted) <= {3, 4, 5}
    assert sum(n for _, _, n in facts.rejects) == len(rejects)
    assert ("input", "unsupported_language", 1) in facts.rejects
    assert ("ga", "ga_not_json", 1) in facts.rejects
    assert any(g.startswith("中文体裁") for g, _ in facts.genres)
    assert facts.summary["variants"] == len(rewrites)
    assert facts.summary["input_tokens"] > 0 and facts.summary["expansion"] > 1
    assert len(facts.units) == 3 and all(u["seconds"] >= 0 for u in facts.units)
    novelty = sorted(r["novelty"] for r in rewrites if r["novelty"] is not None)
    h = facts.quality["novelty"]
    assert h.n == len(novelty) == len(rewrites) and int(h.counts.sum()) == h.n
    assert h.low == min(novelty) and h.high == max(novelty)
    median = novelty[(len(novelty) + 1) // 2 - 1]  # the histogram's quantile: exact to 1 / BINS
    assert median <= h.quantile(0.5) <= median + 1 / report.BINS
    assert facts.documents_with_rows == len({r["source_id"] for r in data})
    assert sum(facts.pairs_per_doc.values()) == len({r["source_id"] for r in rewrites})


def test_report_of_an_output_without_variants(tmp_path: Path):
    inp = write_input(tmp_path / "in", [{"id": "a", "text": EN_TEXT}])
    cfg = make_config(input={"paths": [str(inp)], "id_column": "id"},
                      output={"path": str(tmp_path / "out")})
    out = run_fake(cfg, scripted(lambda stage, *_: verdict_json(1) if stage == "judge" else None)
                   ).output
    facts = report.collect(str(out))
    assert facts.summary["variants"] == 0 and facts.genres == [] and facts.doc_tokens == ([], [])
    report_build.build(str(out))
    assert elements((out / "report" / "index.html").read_text())["plot-quality"]["tag"] == "img"


def test_report_command(output: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["report", str(output)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"{output}/report/index.html")
    missing = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert missing.exit_code == 2 and "no _run.json" in missing.output


# -- the dataset card ----------------------------------------------------------------------------


def card(output: Path) -> tuple[dict, str]:
    text = (output / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_the_card_is_written_without_datasets(output: Path, tmp_path: Path):
    """`datasets` is the `hub` extra: without it the card still says everything else."""
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    (copy / "README.md").unlink()
    code = ("import sys; sys.modules['datasets'] = None\n"  # import datasets -> ImportError
            "from mga_spark.job.card import write_card\n"
            f"write_card({str(copy)!r})\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert run.returncode == 0, run.stderr
    head, body = card(copy)
    with_features, _ = card(output)
    assert "features" not in head["dataset_info"]
    assert head["dataset_info"] == {k: v for k, v in with_features["dataset_info"].items()
                                    if k != "features"}
    assert body == card(output)[1].replace(str(output), str(copy))


def code_blocks(body: str, section: str) -> list[str]:
    start = body.index(section)
    return re.findall(r"```python\n(.*?)```", body[start:], re.S)


def test_card_header_describes_the_data(output: Path):
    from datasets import Features, load_dataset

    head, body = card(output)
    table = pq.read_table(output / "data")
    info = head["dataset_info"]
    assert [f["name"] for f in info["features"]] == table.schema.names
    # the features `datasets` itself reads from the files, and reads back from the card
    loaded = load_dataset("parquet", data_dir=str(output / "data"), split="train",
                          cache_dir=str(output.parent / "hf-cache"))
    assert Features._from_yaml_list(info["features"]) == loaded.features
    assert {"name": "text", "dtype": "large_string"} in info["features"]
    assert info["splits"][0]["num_examples"] == table.num_rows
    assert info["download_size"] == sum(p.stat().st_size for p in (output / "data").iterdir())
    assert head["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
    assert head["language"] == ["en", "zh"] and head["size_categories"] == ["n<1K"]
    for text in ("2502.04235", "`fake`", "prompt version", "acceptance", "| base |",
                 "input.unsupported_language", "datasets", "pyarrow", "spark.read.parquet"):
        assert text in body, text


def test_the_output_loads_with_datasets_exactly_as_the_card_says(output: Path, tmp_path: Path):
    _, body = card(output)
    snippet = code_blocks(body, "With Hugging Face `datasets`")[0]
    assert "load_dataset(" in snippet
    check = (f"{snippet}\nimport json\nfrom datasets import load_dataset\n"
             f"repo = load_dataset({str(output)!r}, split='train')\n"
             "print(json.dumps([ds.num_rows, reformulations.num_rows, repo.num_rows, "
             "ds.column_names, ds[0]['id']]))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "ds")}
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows, reformulations, repo_rows, columns, first = json.loads(proc.stdout.splitlines()[-1])
    table = pq.read_table(output / "data")
    assert rows == repo_rows == table.num_rows
    assert reformulations == table.column("kind").to_pylist().count("reformulation")
    assert columns == table.schema.names and first in table.column("id").to_pylist()


def test_the_pyarrow_snippet_of_the_card_runs(output: Path):
    _, body = card(output)
    scope: dict = {}
    exec(code_blocks(body, "With pyarrow")[0], scope)  # noqa: S102 - our own card's snippet
    assert scope["table"].num_rows == pq.read_table(output / "data").num_rows


# -- the page in a browser -----------------------------------------------------------------------


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True,
                          timeout=180, start_new_session=True)


@pytest.mark.cluster
def test_the_page_renders_in_headless_chromium(output: Path, tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package "
                    "(apt-get install -y chromium); .ci/run does this before the tests")
    report_build.build(str(output))
    url = (output / "report" / "index.html").as_uri()
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", url, profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = elements(dom.stdout)
    for name in report_page.PLOTS:
        assert found[f"plot-{name}"]["src"].startswith("data:image/png;base64,"), name
    for name in report_page.TABLES:
        assert found[f"table-{name}"]["tag"] == "table", name
    shot = tmp_path / "page.png"
    run = chromium("--window-size=1200,2400", f"--screenshot={shot}", url, profile=tmp_path / "p2")
    assert run.returncode == 0 and shot.read_bytes().startswith(PNG_MAGIC), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2400, 1200)
    drawn = (pixels[..., :3].sum(axis=2) < 2.5).mean()  # not white: text, bars, axes
    assert drawn > 0.03, f"only {drawn:.1%} of the screenshot is drawn"
