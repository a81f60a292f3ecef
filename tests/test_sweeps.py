"""Experiments, W&B sweep files, grid expansion, run-local, and reports over real tiny runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, cli_env
from rolecraft.errors import ConfigError
from rolecraft.sweeps.experiments import grid_points, known_experiments, load_experiment
from rolecraft.sweeps.sweepfile import check_composes, expand, load_sweep

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
QUICK = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.checkpoint_every_n_steps=2",
         "data.max_eval_samples=6", "eval.generation.max_new_tokens=8", "trainer.enable_progress_bar=false"]


def rolecraft(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)], cwd=REPO, env=env or cli_env(REPO),
                          capture_output=True, text=True, timeout=timeout)


# ---- experiments and sweep files -----------------------------------------------------------


def test_every_experiment_loads_and_names_real_paper_values():
    from rolecraft.report.aggregate import load_paper_values

    names = known_experiments()
    assert {"table2_baselines", "table3_judge", "table4_human", "table5_emotions", "table6_data_mix",
            "figure6_rpcs", "lora_rank", "base_model"} <= set(names)
    for name in names:
        exp = load_experiment(name)
        rows, source = load_paper_values(exp.paper)
        assert exp.paper is None or source, name
        for label, values in rows.items():  # every published value sits in a column the experiment reports
            assert set(values) <= set(exp.columns), (name, label)


def test_sweep_files_are_generated_from_the_experiments():
    r = rolecraft("sweep", "generate", "--check")
    assert r.returncode == 0, r.stderr
    with_program = [n for n in known_experiments() if load_experiment(n).program]
    assert sorted(p.stem for p in SWEEPS) == sorted(with_program)


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
@pytest.mark.slow
def test_every_sweep_expands_and_every_point_composes(path):
    sweep = load_sweep(path)
    exp = load_experiment(path.stem)
    points = expand(sweep)
    assert points == grid_points(exp)
    n = 1
    for spec in sweep["parameters"].values():
        n *= len(spec.get("values", [0]))
    assert len(points) == n == check_composes(sweep, path)
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
    assert all(f"tags=[{exp.name}]" in p for p in points)
    assert not any(p.startswith("+") for point in points for p in point)


def test_on_off_stay_strings_in_the_yaml():
    text = (REPO / "sweeps" / "table5_emotions.yaml").read_text(encoding="utf-8")
    assert "- 'on'" in text and "- 'off'" in text
    assert load_sweep(REPO / "sweeps" / "table5_emotions.yaml")["parameters"]["emotions"]["values"] == ["on", "off"]


def test_expand_follows_wandb_grid_order():
    sweep = {"method": "grid", "program": "train.py", "parameters": {
        "seed": {"values": [1, 2]}, "data": {"values": ["general", "hybrid"]}, "model": {"value": "tiny"}}}
    assert expand(sweep) == [
        ["data=general", "model=tiny", "seed=1"], ["data=general", "model=tiny", "seed=2"],
        ["data=hybrid", "model=tiny", "seed=1"], ["data=hybrid", "model=tiny", "seed=2"]]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_parameter_the_schema_does_not_know_is_named_with_the_file(tmp_path):
    p = _write(tmp_path, "bad.yaml", "program: train.py\nmethod: grid\nparameters:\n  data: {values: [general]}\n"
                                     "  lora.rnak: {values: [8, 16]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: parameter 'lora.rnak'"):
        check_composes(load_sweep(p), p)
    r = rolecraft("sweep", "expand", p, "--check")
    assert r.returncode == 2 and "lora.rnak" in r.stderr and "bad.yaml" in r.stderr


def test_continuous_distributions_and_bare_on_off_are_refused(tmp_path):
    p = _write(tmp_path, "cont.yaml", "program: train.py\nmethod: grid\nparameters:\n"
                                      "  optim.lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-3}\n")
    with pytest.raises(ConfigError, match=r"cont.yaml: parameter 'optim.lr' has a continuous distribution"):
        load_sweep(p)
    p = _write(tmp_path, "onoff.yaml", "program: train.py\nmethod: grid\nparameters:\n  emotions: {values: [on, off]}\n")
    with pytest.raises(ConfigError, match="quote them"):
        check_composes(load_sweep(p), p)
    p = _write(tmp_path, "bayes.yaml", "program: train.py\nmethod: bayes\nparameters:\n  seed: {values: [1]}\n")
    with pytest.raises(ConfigError, match="method: grid"):
        load_sweep(p)


def test_two_runners_on_one_directory_are_refused(tmp_path):
    from rolecraft.sweeps.local import _lock

    held = _lock(tmp_path)
    with pytest.raises(ConfigError, match="another `rolecraft sweep run-local` is running"):
        _lock(tmp_path)
    held.release()
    _lock(tmp_path).release()  # free again once the first one is gone


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    r = rolecraft("report", "table9", "--runs", tmp_path, "--out", tmp_path / "o")
    assert r.returncode == 2 and "unknown experiment 'table9'" in r.stderr and "table5_emotions" in r.stderr


# ---- run-local, then report -------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_runs(tmp_path_factory, cache_dir):
    """A 2x2 grid (emotions x seed) on the tiny model, run with run-local, killed after the first point
    and rerun: (runs dir, experiment file, outputs of both invocations, first run's mtime)."""
    tmp = tmp_path_factory.mktemp("grid")
    exp = _write(tmp, "tiny_emotions.yaml", "\n".join([
        "name: tiny_emotions", "title: Emotion labels on the tiny model", "program: train.py",
        'grid: {emotions: ["on", "off"]}', "seeds: [1, 2]",
        "fixed: {" + ", ".join(f"{k}: {v}" for k, v in (o.split("=") for o in QUICK)) + "}",
        "rows: emotions", 'row_labels: {"on": with emotion labels, "off": without emotion labels}',
        "columns: [rouge_l/avg, rouge_l/spe]", "paper: table5", 'compare: [["on", "off"]]', "plot: grouped_bars", ""]))
    env = cli_env(cache_dir)
    r = rolecraft("sweep", "generate", exp, "--out", tmp / "sweeps", env=env)
    assert r.returncode == 0, r.stderr
    sweep = tmp / "sweeps" / "tiny_emotions.yaml"
    runs = tmp / "runs"
    log = open(tmp / "killed.log", "w")  # a file, not a pipe: nobody reads a pipe while we wait
    p = subprocess.Popen([sys.executable, "-m", "rolecraft.cli", "sweep", "run-local", str(sweep), "--runs-dir", str(runs)],
                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 400
    first = None
    while time.time() < deadline and first is None:
        done = sorted(runs.glob("tiny_emotions/*/metrics.json"))
        first = done[0] if done else None
        time.sleep(0.2)
    if first is None:
        os.killpg(p.pid, signal.SIGKILL)
    assert first is not None, "the first grid point never finished: " + (tmp / "killed.log").read_text()[-3000:]
    os.killpg(p.pid, signal.SIGKILL)  # the runner and the run it had started next
    p.wait()
    log.close()
    killed_out = (tmp / "killed.log").read_text()
    mtime = first.stat().st_mtime_ns
    r = rolecraft("sweep", "run-local", sweep, "--runs-dir", runs, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return runs, exp, killed_out, r.stdout, first, mtime


@pytest.mark.slow
def test_run_local_killed_then_rerun_completes_only_what_is_missing(grid_runs):
    runs, _, _, rerun_out, first, mtime = grid_runs
    assert "3 run(s) finished, 1 already done, 0 failed" in rerun_out
    assert first.stat().st_mtime_ns == mtime  # the finished point was not run again
    dirs = sorted(d.name for d in (runs / "tiny_emotions").iterdir() if d.is_dir())
    assert len(dirs) == 4 and all((runs / "tiny_emotions" / d / "metrics.json").is_file() for d in dirs)
    assert [d.rsplit("_", 1)[0] for d in dirs] == ["000_emotions-on_seed-1", "001_emotions-on_seed-2",
                                                   "002_emotions-off_seed-1", "003_emotions-off_seed-2"]


@pytest.mark.slow
def test_report_over_the_grid_gives_the_table_plots_and_dashboard(grid_runs, tmp_path):
    runs, exp, *_ = grid_runs
    (runs / "broken").mkdir(exist_ok=True)
    (runs / "broken" / "metrics.json").write_text('{"test/rouge_l/avg": 0.1', encoding="utf-8")  # cut off
    out = tmp_path / "report"
    r = rolecraft("report", exp, "--runs", runs, "--out", out, "--resamples", 500)
    assert r.returncode == 0, r.stderr
    assert "broken/metrics.json: unreadable or partial" in r.stderr
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    cells = [c for row in rep["rows"] for c in row["cells"].values()]
    filled = [c for c in cells if c["n"]]
    assert len(filled) == 4 and all(c["n"] == 2 and c["std"] is not None for c in filled)
    # the paper's Table 5 SPE values sit beside ours; Avg was not published and stays missing
    by_row = {row["row"]: row["cells"] for row in rep["rows"]}
    assert by_row["with emotion labels"]["rouge_l/spe"]["paper"] == 0.3573
    assert by_row["with emotion labels"]["rouge_l/avg"]["paper"] is None
    md = (out / "table.md").read_text(encoding="utf-8")
    assert "| with emotion labels |" in md and "0.3573" in md and "n/p" in md and "(n=2)" in md
    assert "\\begin{tabular}" in (out / "table.tex").read_text(encoding="utf-8")
    assert len((out / "table.csv").read_text(encoding="utf-8").splitlines()) == 1 + 2 * 2
    pngs = sorted((out / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["tiny_emotions.png", "tiny_emotions_loss.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "samples.jsonl" in html and "http" not in html.split("<body>")[1]
    # links to predictions resolve from the dashboard's folder
    import re

    hrefs = re.findall(r"href='([^']+samples.jsonl)'", html)
    assert hrefs
    for href in hrefs:
        assert (out / href).resolve().is_file()
    ab = [a for a in rep["ablations"] if a["metric"] == "rouge_l/avg"][0]
    assert ab["items"] == 3 * 6 and ab["runs_a"] == 2  # 6 test items per kind
    assert ab["ci_low"] <= ab["diff"] <= ab["ci_high"] and 0.0 <= ab["p_diff_le_0"] <= 1.0


@pytest.mark.slow
def test_report_from_a_wandb_api_stub(grid_runs, tmp_path):
    """The part of the W&B public API the report uses: api.runs(path, filters) -> runs with name, url,
    tags, config (with our _hydra record) and summary."""
    from rolecraft.report.main import report

    runs_dir, exp_file, *_ = grid_runs

    class Run:
        def __init__(self, d: Path):
            import yaml

            self.name = d.name
            self.url = f"https://wandb.ai/me/rolecraft/runs/{d.name[:3]}"
            cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
            self.tags = cfg["tags"]
            overrides = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text(encoding="utf-8"))
            self.config = {**cfg, "_hydra": {"overrides": overrides, "choices": {}}}
            self.summary = {**json.loads((d / "metrics.json").read_text(encoding="utf-8")), "_runtime": 3}

    class Api:
        def __init__(self):
            self.calls = []

        def runs(self, path, filters=None):
            self.calls.append((path, filters))
            wanted = filters["tags"]["$in"]
            found = [Run(d) for d in sorted((runs_dir / "tiny_emotions").iterdir()) if d.is_dir()]
            return [r for r in found if set(r.tags) & set(wanted)]

    api = Api()
    res = report(str(exp_file), None, str(tmp_path / "wb"), wandb_path="me/rolecraft", api=api)
    assert api.calls == [("me/rolecraft", {"tags": {"$in": ["tiny_emotions"]}})]
    assert res.table.filled() == 4
    html = (tmp_path / "wb" / "index.html").read_text(encoding="utf-8")
    assert "https://wandb.ai/me/rolecraft/runs/" in html
    # no per-item predictions through the API: the ablation says so instead of inventing an interval
    assert all(a["diff"] is None and "per-item" in a["reason"] for a in res.ablations)


# ---- logging and launchers ---------------------------------------------------------------------


@pytest.mark.slow
def test_wandb_offline_run_records_config_group_summaries_table_and_adapter(tmp_path, cache_dir):
    from rolecraft.testing.wandb_offline import summary_of

    env = cli_env(cache_dir)
    env["WANDB_MODE"] = "offline"
    env["HF_TOKEN"] = "hf-secret-" + "x" * 8
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "logger=wandb", "logger.wandb.log_model=true",
                        "tags=[table5_emotions]", "emotions=off", *QUICK, f"hydra.run.dir={out}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    s = summary_of(files[0])
    assert s["group"] == "table5_emotions" and s["job_type"] == "train" and "table5_emotions" in s["tags"]
    assert "emotions=off" in s["config"]["_hydra"]["overrides"] and s["config"]["_hydra"]["choices"]["emotions"] == "off"
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert s["summary"]["test/rouge_l/avg"] == pytest.approx(metrics["test/rouge_l/avg"])
    assert s["metrics"]["val/loss"].min and s["metrics"]["train/loss"].last
    assert ("adapter-" + files[0].stem.split("-")[-1], "model") in s["artifacts"]
    assert any(t == "run_table" for _, t in s["artifacts"])
    assert env["HF_TOKEN"] not in files[0].read_bytes().decode("utf-8", "replace")


@pytest.mark.slow
def test_a_grid_through_the_submitit_launcher(tmp_path, cache_dir):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]' (in .[dev])")
    env = cli_env(cache_dir, tmp_path / "multi")
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=local", "seed=1,2", *QUICK],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = sorted((tmp_path / "multi").rglob("metrics.json"))
    assert len(metrics) == 2 and {m.parent.name.split("_")[0] for m in metrics} == {"0", "1"}
    assert list((tmp_path / "multi").rglob(".submitit"))  # it went through submitit, not the basic launcher
