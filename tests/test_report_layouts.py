"""Report layouts on hand-made run directories (no training): a metric family (Table 3), human
results (Table 4), paper rows we have no run for, and missing cells that stay missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolecraft.report.main import report


def run_dir(root: Path, name: str, metrics: dict, tags: list[str], overrides: list[str] = ()) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (d / "config.yaml").write_text("tags: [" + ", ".join(tags) + "]\nseed: 42\n", encoding="utf-8")
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides), encoding="utf-8")
    return d


def test_table3_rows_come_from_the_judge_metric_family(tmp_path):
    runs = tmp_path / "runs"
    for seed, ranks in ((42, (1.3, 1.9, 2.8)), (43, (1.5, 1.8, 2.7))):
        run_dir(runs, f"judge{seed}", {"judge/avg_rank/ours": ranks[0], "judge/avg_rank/chatglm3_6b": ranks[1],
                                      "judge/avg_rank/qwen2_5_7b": ranks[2], "judge/model": "gpt-4"},
                ["table3_judge"], [f"seed={seed}"])
    run_dir(runs, "other", {"judge/avg_rank/ours": 9.0}, ["table5_emotions"])  # another experiment: ignored
    res = report("table3_judge", str(runs), str(tmp_path / "out"))
    rows = {r.label: r for r in res.table.rows}
    ours = rows["RoleCraft-GLM"].cells["judge/avg_rank"]
    assert ours.n == 2 and ours.mean == pytest.approx(1.4) and rows["RoleCraft-GLM"].paper["judge/avg_rank"] == 1.42
    # Qwen2.5-7B is not the paper's "Qwen": its own row, no published value beside it
    assert rows["Qwen2.5-7B"].cells["judge/avg_rank"].mean == pytest.approx(2.75)
    assert rows["Qwen2.5-7B"].paper == {} and rows["Qwen"].cells["judge/avg_rank"].n == 0
    # Baichuan2 is in the paper's table but we have no run: shown, ours missing, never 0
    assert rows["Baichuan2"].cells["judge/avg_rank"].n == 0
    md = (tmp_path / "out" / "table.md").read_text(encoding="utf-8")
    assert "| Baichuan2 | — | 2.95 | — |" in md


def test_table4_reads_human_results_files(tmp_path):
    runs = tmp_path / "runs"
    (runs / "human").mkdir(parents=True)
    scores = {"ours": {"ce": {"mean": 3.6}, "consistency": {"mean": 4.0}, "ed": {"mean": None}},
              "gpt-4": {"ce": {"mean": 3.9}, "consistency": {"mean": 4.3}, "ed": {"mean": 2.1}}}
    (runs / "human" / "results.json").write_text(json.dumps({"format": "rolecraft-human-results/1", "scores": scores}),
                                                 encoding="utf-8")
    res = report("table4_human", str(runs), str(tmp_path / "out"))
    rows = {r.label: r for r in res.table.rows}
    assert rows["RoleCraft-GLM"].cells["human/ce"].mean == 3.6 and rows["RoleCraft-GLM"].paper["human/ce"] == 3.75
    assert rows["RoleCraft-GLM"].cells["human/ed"].n == 0  # not rated: missing, not 0
    assert rows["gpt-4"].cells["human/ed"].mean == 2.1


def test_untagged_grid_runs_are_used_with_a_note_and_unfinished_ones_skipped(tmp_path):
    runs = tmp_path / "runs"
    for i, (emo, avg) in enumerate((("on", 0.31), ("off", 0.29))):
        run_dir(runs, f"{i}_emotions={emo}", {"test/rouge_l/avg": avg, "test/rouge_l/spe": avg - 0.05}, [],
                [f"emotions={emo}", "seed=1"])
    run_dir(runs, "2_emotions=on_unfinished", {"train/loss": 3.2}, [], ["emotions=on", "seed=2"])
    res = report("table5_emotions", str(runs), str(tmp_path / "out"))
    assert any("no run is tagged" in p for p in res.problems)
    assert any("2_emotions=on_unfinished" in p and "none of" in p for p in res.problems)
    rows = {r.key: r for r in res.table.rows}
    assert rows["on"].cells["rouge_l/avg"].mean == pytest.approx(0.31) and rows["on"].cells["rouge_l/avg"].n == 1
    assert rows["off"].cells["rouge_l/spe"].mean == pytest.approx(0.24)
    assert rows["on"].cells["rouge_l/raw"].n == 0


def test_untagged_runs_of_another_grid_and_repeated_points_are_not_counted(tmp_path):
    runs = tmp_path / "runs"
    run_dir(runs, "a", {"test/rouge_l/avg": 0.30}, [], ["emotions=on", "seed=1"])
    run_dir(runs, "b", {"test/rouge_l/avg": 0.99}, [], ["lora=r64", "seed=1"])  # another experiment's grid
    run_dir(runs, "c", {"test/rouge_l/avg": 0.40}, [], ["emotions=on", "seed=1"])  # the same point again
    res = report("table5_emotions", str(runs), str(tmp_path / "out"))
    cell = {r.key: r for r in res.table.rows}["on"].cells["rouge_l/avg"]
    assert cell.n == 1 and cell.mean == pytest.approx(0.40)
    assert any("same point" in p for p in res.problems)


def test_paired_bootstrap_reads_per_item_scores_of_both_run_layouts(tmp_path):
    """Per-item Rouge-L from a train.py run (predictions.jsonl, `id`) and an evaluate.py run
    (samples.jsonl, `key`), paired on the key; a run without samples gives no interval."""
    from rolecraft.report.bootstrap import item_scores, paired_bootstrap
    from rolecraft.report.collect import RunRecord

    def rows(field: str, shift: float) -> str:
        return "".join(json.dumps({field: f"k{i}", "kind": ("general", "specific")[i % 2],
                                   "rouge_l": 0.2 + 0.01 * i + shift}) + "\n" for i in range(10))

    a, b, none = tmp_path / "train", tmp_path / "eval", tmp_path / "nothing"
    for d in (a, b, none):
        d.mkdir()
    (a / "predictions.jsonl").write_text(rows("id", 0.1), encoding="utf-8")
    (b / "samples.jsonl").write_text(rows("key", 0.0), encoding="utf-8")
    ra, rb = RunRecord("a", {}, path=a), RunRecord("b", {}, path=b)
    assert item_scores(ra, "rouge_l/spe") == {("specific", f"k{i}"): pytest.approx(0.3 + 0.01 * i) for i in (1, 3, 5, 7, 9)}
    res = paired_bootstrap([ra], [rb], "rouge_l/avg", resamples=200)
    assert res["items"] == 10 and res["diff"] == pytest.approx(0.1)
    assert res["ci_low"] == pytest.approx(0.1) and res["ci_high"] == pytest.approx(0.1) and res["p_diff_le_0"] == 0.0
    assert paired_bootstrap([ra], [RunRecord("n", {}, path=none)], "rouge_l/avg") is None
