"""Results that carry their provenance, and failures that are loud (issue 19, item 3).

- every train.py / evaluate.py run writes provenance.json: base model, dataset name + content hash
  of the files read, prompt spec, overrides as typed, code version; no secrets;
- `rolecraft report` shows each row's setup and compares the paper's values only with runs of the
  experiment's declared setup (else greyed, with a note, in table.md, index.html and report.json);
- a report over no runs, a judge whose verdicts (nearly) all failed and predictions that (mostly)
  join no benchmark item exit non-zero with one line (each with its way to allow it);
- loss curves of runs with one logged point are visible.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import FAST, REPO, cli_env, read_metrics, run_evaluate, run_train
from rolecraft.testing.fake_openai import FakeOpenAI

KEY_ENV = "ROLECRAFT_TEST_API_KEY"


def rolecraft(*args, cache: Path, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)], cwd=REPO, env=cli_env(cache),
                          capture_output=True, text=True, timeout=timeout)


def demo_sha256() -> dict[str, str]:
    """The demo dataset's files hashed here, independently of rolecraft.provenance."""
    root = REPO / "src" / "rolecraft" / "data" / "demo"
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest()
            for n in ("meta.json", "characters.jsonl", "script.jsonl", "samples.jsonl")}


def demo_items(n_per_kind: int = 2) -> list:
    from omegaconf import OmegaConf

    from rolecraft.config import BenchmarkConfig
    from rolecraft.evaluation.benchmarks import load_benchmark

    return load_benchmark(OmegaConf.structured(BenchmarkConfig(max_samples=n_per_kind))).items


def write_preds(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def tiny_experiment(tmp: Path, name: str, setup: str) -> Path:
    """An experiment laid out like Table 5 (emotions on/off, the paper's SPE values) over tiny runs."""
    p = tmp / f"{name}.yaml"
    p.write_text("\n".join([
        f"name: {name}", "title: Emotion labels on the tiny model", "program: train.py",
        'grid: {emotions: ["on", "off"]}', "seeds: [1]", "rows: emotions",
        'row_labels: {"on": with emotion labels, "off": without emotion labels}',
        "columns: [rouge_l/spe, rouge_l/avg]", "paper: table5", setup, "plot: grouped_bars", ""]), encoding="utf-8")
    return p


# ---- a real train run, evaluated, reported --------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One tiny train.py run tagged like a grid point (emotions=off), with a secret-bearing URL typed."""
    tmp = tmp_path_factory.mktemp("prov")
    run = tmp / "runs" / "t1"
    secret = "pw" + uuid.uuid4().hex[:8]
    r = run_train(["emotions=off", "seed=1", "tags=[tiny_prov]", *FAST,
                   f"prompt.retrieval.endpoint.base_url=http://me:{secret}@127.0.0.1:9/v1", f"hydra.run.dir={run}"],
                  cache_dir, tmp / "unused")
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, run, secret


@pytest.mark.slow
def test_a_train_run_records_model_data_hash_prompt_overrides_and_code(trained):
    _, run, secret = trained
    text = (run / "provenance.json").read_text(encoding="utf-8")
    assert secret not in text  # the URL's password stays out, as in config.yaml
    p = json.loads(text)
    assert p["program"] == "train.py"
    assert p["model"] == {"preset": "tiny", "name_or_path": "embedded:tiny"}
    assert p["data"]["name"] == "rolecraft-demo" and p["data"]["root"] == "embedded:demo"
    assert p["data"]["files"] == demo_sha256()
    assert len(p["data"]["sha256"]) == 64
    # the prompt spec is prompt.yaml's record, template hash included
    import yaml

    assert p["prompt"] == yaml.safe_load((run / "prompt.yaml").read_text(encoding="utf-8"))
    assert p["prompt"]["emotions"] is False
    assert "emotions=off" in p["overrides"] and "trainer.max_steps=6" in p["overrides"]
    assert any(o.startswith("prompt.retrieval.endpoint.base_url=http://***@") for o in p["overrides"])
    import rolecraft

    assert p["code"]["version"] == rolecraft.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the commit the code ran from, and whether it was edited
        assert p["code"]["git_commit"] == head.stdout.strip() and isinstance(p["code"]["git_dirty"], bool)


@pytest.mark.slow
def test_an_evaluation_of_a_runs_predictions_records_the_runs_base_and_the_benchmark(trained, cache_dir, tmp_path):
    _, run, _ = trained
    out = tmp_path / "ev"
    r = run_evaluate(["answers=predictions", f"answers.path={run}", "benchmark.max_samples=2",
                      "answers.allow_missing=true"], cache_dir, out)
    assert r.returncode == 0, r.stderr[-3000:]
    p = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert p["program"] == "evaluate.py"
    assert p["model"]["source"] == "predictions" and p["model"]["preset"] == "tiny"
    assert p["model"]["made_by"] == "train.py" and p["model"]["path"] == str(run)
    assert p["data"]["benchmark"] == "roleinstruct" and p["data"]["files"] == demo_sha256()
    assert "answers=predictions" in p["overrides"]


@pytest.mark.slow
def test_report_of_tiny_runs_greys_the_papers_values_with_a_note(trained, cache_dir, tmp_path):
    tmp, run, _ = trained
    exp = tiny_experiment(tmp_path, "tiny_prov", "paper_setup: {text: ChatGLM3-6B on RoleInstruct, "
                                                  "models: [chatglm3_6b, glm4_9b], data: [roleinstruct-v1]}")
    out = tmp_path / "rep"
    r = rolecraft("report", exp, "--runs", tmp / "runs", "--out", out, "--resamples", 100, cache=cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    note = "runs use model=tiny, data=embedded:demo; paper: ChatGLM3-6B on RoleInstruct"
    assert note in r.stderr
    md = (out / "table.md").read_text(encoding="utf-8")
    assert note in md
    row = next(line for line in md.splitlines() if line.startswith("| without emotion labels |"))
    assert "(0.3362)" in row and "n/c" in row and "model=tiny, data=embedded:demo" in row
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "class='warn'" in html and note in html and "<td class='grey'" in html and "(0.3362)" in html
    assert "rolecraft-demo" not in html or "embedded:demo" in html
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert note in rep["paper_note"] and rep["paper_setup"]["models"] == ["chatglm3_6b", "glm4_9b"]
    by_row = {x["row"]: x for x in rep["rows"]}
    off = by_row["without emotion labels"]
    assert off["paper_comparable"] is False and off["cells"]["rouge_l/spe"]["paper"] == 0.3362
    assert off["setups"] == ["model=tiny, data=embedded:demo"]
    (prov,) = off["runs"]
    assert prov["model"] == "tiny" and prov["data_sha256"] and prov["recorded"] is True
    assert "emotions=off" in prov["overrides"]
    # no run of the other row: nothing to compare, the paper's value stands as published
    assert by_row["with emotion labels"]["paper_comparable"] is None
    # the same runs against a setup they do match: compared, Δ shown, no note
    exp2 = tiny_experiment(tmp_path, "tiny_prov", "paper_setup: {text: the tiny model on the demo, "
                                                   "models: [tiny], data: [rolecraft-demo]}")
    out2 = tmp_path / "rep2"
    r = rolecraft("report", exp2, "--runs", tmp / "runs", "--out", out2, "--resamples", 100, cache=cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    rep2 = json.loads((out2 / "report.json").read_text(encoding="utf-8"))
    assert rep2["paper_note"] is None
    assert {x["row"]: x for x in rep2["rows"]}["without emotion labels"]["paper_comparable"] is True
    row2 = next(line for line in (out2 / "table.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("| without emotion labels |"))
    assert "| 0.3362 |" in row2 and "n/c" not in row2


# ---- report over hand-made run directories (no training) ---------------------------------------


def _run_dir(root: Path, name: str, emotions: str, provenance: dict | None, config: str = "") -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test/rouge_l/spe": 0.3, "test/rouge_l/avg": 0.2}), encoding="utf-8")
    (d / "config.yaml").write_text("tags: [tiny_prov]\nseed: 1\n" + config, encoding="utf-8")
    (d / ".hydra" / "overrides.yaml").write_text(f"- emotions={emotions}\n", encoding="utf-8")
    if provenance is not None:
        (d / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    return d


def test_paper_values_are_compared_only_for_rows_whose_runs_match_the_declared_setup(tmp_path):
    from rolecraft.report.main import report

    runs = tmp_path / "runs"
    real = {"model": {"preset": "glm4_9b", "name_or_path": "THUDM/glm-4-9b-chat-hf"},
            "data": {"name": "roleinstruct-v1", "root": "data/roleinstruct-v1", "sha256": "ab" * 32},
            "overrides": ["emotions=on"], "code": {"version": "0.1.0"}}
    _run_dir(runs, "real", "on", real)
    # an older run without provenance.json: described from its config.yaml (tiny model, demo data)
    _run_dir(runs, "old", "off", None, "model: {name: tiny, name_or_path: 'embedded:tiny'}\ndata: {root: 'embedded:demo'}\n")
    exp = tiny_experiment(tmp_path, "tiny_prov", "paper_setup: {text: ChatGLM3-6B on RoleInstruct, "
                                                  "models: [chatglm3_6b, glm4_9b], data: [roleinstruct-v1]}")
    res = report(str(exp), str(runs), str(tmp_path / "out"), resamples=50)
    rows = {r.label: r for r in res.table.rows}
    assert rows["with emotion labels"].comparable is True
    assert rows["without emotion labels"].comparable is False
    assert res.table.paper_note.startswith("runs use model=tiny, data=embedded:demo; paper: ChatGLM3-6B")
    md = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    on = next(line for line in md.splitlines() if line.startswith("| with emotion labels |"))
    assert "| 0.3573 | -0.0573 |" in on and "model=glm4_9b, data=data/roleinstruct-v1" in on
    csv_rows = (tmp_path / "out" / "table.csv").read_text(encoding="utf-8").splitlines()
    assert csv_rows[0].endswith("paper_comparable,runs")
    assert any(",false," in line and "without emotion labels" in line for line in csv_rows)


def test_report_over_no_runs_fails_with_one_line_unless_allowed(tmp_path, cache_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = rolecraft("report", "table5_emotions", "--runs", empty, "--out", tmp_path / "out", cache=cache_dir)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: report table5_emotions: no finished run")
    assert "--allow-empty" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    r = rolecraft("report", "table5_emotions", "--runs", empty, "--out", tmp_path / "out", "--allow-empty",
                  cache=cache_dir)
    assert r.returncode == 0, r.stderr
    assert "warning: no run of table5_emotions found" in r.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))["runs"] == 0


def test_a_single_logged_loss_point_is_drawn(tmp_path):
    """A run that logged one training loss: the point shows in the plot's pixels (a bare line of one
    point draws nothing)."""
    from rolecraft.report.aggregate import build_table
    from rolecraft.report.collect import collect_local
    from rolecraft.report.plots import loss_figure
    from rolecraft.sweeps.experiments import load_experiment

    runs = tmp_path / "runs"
    d = _run_dir(runs, "short", "on", None)
    (d / "logs").mkdir()
    (d / "logs" / "metrics.csv").write_text("epoch,step,train/loss\n0,1,2.5\n", encoding="utf-8")
    exp = load_experiment(str(tiny_experiment(tmp_path, "tiny_prov", "")))
    found, _ = collect_local(runs, exp)
    plt, fig, ax = loss_figure(build_table(exp, found))
    leg = ax.get_legend()
    if leg is not None:
        leg.remove()  # only the data itself
    fig.canvas.draw()
    x, y = ax.transData.transform((1.0, 2.5))
    w, h = fig.canvas.get_width_height()
    pixels = fig.canvas.buffer_rgba()
    import numpy as np

    img = np.asarray(pixels).reshape(h, w, 4)
    px = img[int(round(h - y)), int(round(x)), :3]
    plt.close(fig)
    assert tuple(px) != (255, 255, 255), "the single loss point is not drawn"


# ---- evaluate.py: unmatched predictions, failed judge verdicts --------------------------------------


@pytest.mark.slow
def test_predictions_that_mostly_join_nothing_fail_with_counts(tmp_path, cache_dir):
    items = demo_items(2)
    rows = [{"key": items[0].key, "prediction": "答"}, {"key": items[1].key, "prediction": "答"}]
    rows += [{"key": f"other-{i}", "question": f"另一个问题 {i}", "prediction": "答"} for i in range(30)]
    preds = write_preds(tmp_path / "p.jsonl", rows)
    base = ["answers=predictions", f"answers.path={preds}", "benchmark.max_samples=2", "answers.allow_missing=true"]
    r = run_evaluate(base, cache_dir, tmp_path / "ev1")
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("error: answers.path=") and "only 2 of 32 predictions (6.2%)" in err
    assert "30 join none" in err and "answers.min_matched" in err and "Traceback" not in r.stderr
    assert not (tmp_path / "ev1" / "metrics.json").exists()
    # allowed by a lower threshold: counted, and said on the terminal
    r = run_evaluate([*base, "answers.min_matched=0.05"], cache_dir, tmp_path / "ev2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 of 32 predictions joined benchmark=roleinstruct items; 30 joined none" in r.stdout + r.stderr
    m = read_metrics(tmp_path / "ev2")
    assert (m["answers/matched"], m["answers/unmatched"]) == (2, 30)
    # the key is range-checked before anything loads
    r = run_evaluate([*base, "answers.min_matched=1.5"], cache_dir, tmp_path / "ev3")
    assert r.returncode == 2 and "answers.min_matched=1.5: must be in [0, 1]" in r.stderr


@pytest.fixture()
def judge_server():
    key = "rc-test-" + uuid.uuid4().hex
    with FakeOpenAI(api_key=key) as srv:
        yield srv, key


@pytest.mark.slow
def test_a_judge_whose_verdicts_all_fail_exits_non_zero_unless_allowed(judge_server, tmp_path, cache_dir):
    srv, key = judge_server
    srv.responders["fake-judge"] = lambda req: "I like both answers."  # never a ranking
    items = demo_items(1)
    good = write_preds(tmp_path / "good.jsonl", [{"key": it.key, "prediction": f"GOOD {it.question}"} for it in items])
    weak = write_preds(tmp_path / "weak.jsonl", [{"key": it.key, "prediction": f"meh {it.question}"} for it in items])
    args = ["answers=predictions", f"answers.path={good}", "answers.name=ours", "benchmark.max_samples=1",
            "judge=rank", "judge.model=fake-judge", f"judge.compare=['weak={weak}']", "judge.max_attempts=2",
            f"judge.endpoint.base_url={srv.base_url}", f"judge.endpoint.api_key_env={KEY_ENV}",
            "judge.endpoint.backoff_base=0.05", f"paths.cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "ev"
    r = run_evaluate(args, cache_dir, out, env={KEY_ENV: key})
    assert r.returncode == 2, r.stderr[-3000:]
    err = r.stderr.strip().splitlines()[-1]
    n = len(items)
    assert err.startswith(f"error: judge: {n} of {n} verdicts failed (100%") and "judge.max_failed=1.0" in err
    assert "Traceback" not in r.stderr
    # the evidence is kept; the run is not marked finished
    assert (out / "judge.jsonl").is_file() and (out / "samples.jsonl").is_file()
    assert not (out / "metrics.json").exists()
    # allowed: recorded, with the failures counted and a warning on the terminal
    r = run_evaluate([*args, "judge.max_failed=1.0"], cache_dir, tmp_path / "ev2", env={KEY_ENV: key})
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"judge: {n} of {n} verdicts failed" in r.stdout + r.stderr  # a warning (logs: stdout or stderr)
    m = read_metrics(tmp_path / "ev2")
    assert m["judge/failures"] == n and m["judge/avg_rank/ours"] is None
    # the share is range-checked before anything is asked
    before = srv.count("chat")
    r = run_evaluate([*args, "judge.max_failed=1.5"], cache_dir, tmp_path / "ev3", env={KEY_ENV: key})
    assert r.returncode == 2 and "judge.max_failed=1.5: must be in [0, 1]" in r.stderr and srv.count("chat") == before


@pytest.mark.slow
def test_recording_and_reporting_provenance_import_no_deep_learning_library(tmp_path, cache_dir):
    """evaluate.py over a predictions file (provenance.json included) and `rolecraft report` stay torch-free."""
    from test_startup_imports import HEAVY, imported_modules

    items = demo_items(1)
    preds = write_preds(tmp_path / "p.jsonl", [{"key": it.key, "prediction": "答"} for it in items])
    out = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "evaluate.py"), "answers=predictions",
                        f"answers.path={preds}", "benchmark.max_samples=1", f"hydra.run.dir={out}"], cwd=REPO,
                       env=cli_env(cache_dir), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((out / "provenance.json").read_text(encoding="utf-8"))["model"]["sha256"]
    r2 = subprocess.run([sys.executable, "-X", "importtime", "-m", "rolecraft.cli", "report",
                         str(tiny_experiment(tmp_path, "tiny_prov", "")), "--runs", str(tmp_path), "--out",
                         str(tmp_path / "rep"), "--allow-empty"], cwd=REPO, env=cli_env(cache_dir),
                        capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    for res, what in ((r, "evaluate.py answers=predictions"), (r2, "rolecraft report")):
        heavy = sorted(m for m in imported_modules(res.stderr) if m.split(".")[0] in HEAVY)
        assert not heavy, f"{what} imported {heavy[:20]}"
